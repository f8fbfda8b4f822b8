"""The BTCV benchmark's sources: dealt out once, derived label files keep only their organs, inputs untouched."""

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.bench.scripts import load_bench_script
from tests.conftest import write_nifti
from unimos.data.manifest import load_manifest

NAMES = ["spleen", "right_kidney", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
         "inferior_vena_cava", "portal_and_splenic_vein", "pancreas", "right_adrenal_gland", "left_adrenal_gland"]


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("btcv_partial")


def _btcv_like(root: Path) -> Path:
    """18 tiny cases with all 13 organs as one-voxel-thick slabs (value v in slab v), BTCV's files and splits."""
    ids = [f"BTCV_{i:04d}" for i in range(1, 19)]
    for cid in ids:
        label = np.zeros((14, 6, 4), dtype=np.uint8)
        for value in range(1, 14):
            label[value, 1:5, 1:3] = value
        write_nifti(root / "labelsTr" / f"{cid}.nii.gz", label)
        write_nifti(root / "imagesTr" / f"{cid}_0000.nii.gz", (label * 10).astype(np.int16))
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, **{n: i + 1 for i, n in enumerate(NAMES)}},
        "numTraining": 18, "file_ending": ".nii.gz"}))
    (root / "splits.json").write_text(json.dumps({"train": ids[:14], "validation": ids[14:]}))
    return root


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_every_training_case_goes_to_exactly_one_source_and_the_deal_is_seeded(bench):
    ids = [f"c{i}" for i in range(14)]
    sources = bench.assign_sources(ids, seed=0)
    dealt = [cid for members in sources.values() for cid in members]
    assert sorted(dealt) == sorted(ids)
    assert len(sources["full_src"]) == 2 and all(len(sources[n]) >= 2 for n in bench.SOURCE_ORGANS)
    assert bench.assign_sources(ids, seed=0) == sources
    assert bench.assign_sources(ids, seed=1) != sources


def test_unlabeled_variant_moves_four_partial_cases_and_keeps_every_source(bench):
    sources = bench.assign_sources([f"c{i}" for i in range(14)], seed=0)
    variant = bench.unlabeled_variant(sources)
    assert len(variant["unlabeled_src"]) == 4
    assert variant["full_src"] == sources["full_src"]
    assert all(variant[n] for n in bench.SOURCE_ORGANS)
    before = sorted(c for n, ids in sources.items() for c in ids)
    assert sorted(c for ids in variant.values() for c in ids) == before


def test_partial_sources_keep_only_their_organs_and_the_data_folder_is_untouched(bench, tmp_path):
    data = _btcv_like(tmp_path / "btcv")
    before = _digest(data)
    made = bench.write_manifests(data, tmp_path / "out", seed=0)
    assert _digest(data) == before
    manifest = load_manifest(made["manifests"]["partial"])
    kidney = next(s for s in manifest.sources if s.name == "kidney_src")
    case = next(c for c in manifest.cases if c.case_id == made["sources"]["kidney_src"][0])
    assert case.annotated_classes == {"kidney_right", "kidney_left"} and case.source == kidney
    assert tmp_path / "out" in case.label_path.parents
    values = set(np.unique(np.asanyarray(nib.load(str(case.label_path)).dataobj)).tolist())
    assert values == {0, 2, 3}
    test_cases = manifest.split("test")
    assert [c.case_id for c in test_cases] == [f"BTCV_{i:04d}" for i in range(15, 19)]
    assert all(c.label_path.parent == data / "labelsTr" for c in test_cases)


def test_the_four_collections_hold_what_their_rows_promise(bench, tmp_path):
    made = bench.write_manifests(_btcv_like(tmp_path / "btcv"), tmp_path / "out", seed=0)
    kinds = {name: {c.case_id: c.kind for c in load_manifest(path).split("train")}
             for name, path in made["manifests"].items()}
    assert sorted(kinds["full_only"]) == made["sources"]["full_src"]
    assert set(kinds["upper"].values()) == {"full"} and len(kinds["upper"]) == 14
    assert list(kinds["partial"].values()).count("full") == 2 and len(kinds["partial"]) == 14
    assert list(kinds["ssl"].values()).count("unlabeled") == 4 and len(kinds["ssl"]) == 14


def test_organ_table_takes_means_over_13_organs_and_the_synapse_8(bench):
    from _common import organ_table

    organs = ["spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver", "stomach", "aorta",
              "inferior_vena_cava", "portal_and_splenic_vein", "pancreas", "adrenal_gland_right",
              "adrenal_gland_left"]
    per = {o: {"dsc": 1.0 if o in bench.SYNAPSE8 else 0.0, "nsd": 0.5, "hd95": 2.0, "n": 4} for o in organs}
    table = organ_table({"per_structure": per}, organs, {"mean13": organs, "mean8": list(bench.SYNAPSE8)})
    assert table["mean8"]["dsc"] == 1.0
    assert table["mean13"]["dsc"] == pytest.approx(8 / 13)
