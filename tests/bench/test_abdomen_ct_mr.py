"""bench/abdomen_ct_mr.py: a matched row's patch share, read from the CT+MR collection's sampler."""

import json
from pathlib import Path

import numpy as np

from tests.bench.scripts import load_bench_script
from tests.conftest import write_nifti

CT_NAMES = ["spleen", "right_kidney", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
            "inferior_vena_cava", "portal_and_splenic_vein", "pancreas", "right_adrenal_gland", "left_adrenal_gland"]
MR_NAMES = ["liver", "right_kidney", "left_kidney", "spleen"]
SPACING = np.diag([3.0, 3.0, 3.0, 1.0])  # the plan's 3 mm grid: preprocessing keeps every one-voxel slab


def _folder(root: Path, prefix: str, names: list[str], cases: int, validation: int) -> Path:
    """A dataset folder in BTCV's / CHAOS's layout: every organ a one-voxel slab of its value in every case."""
    ids = [f"{prefix}_{i:04d}" for i in range(1, cases + 1)]
    for cid in ids:
        label = np.zeros((len(names) + 2, 8, 6), dtype=np.uint8)
        for value in range(1, len(names) + 1):
            label[value, 2:6, 2:4] = value
        write_nifti(root / "labelsTr" / f"{cid}.nii.gz", label, SPACING)
        write_nifti(root / "imagesTr" / f"{cid}_0000.nii.gz", (label * 10).astype(np.int16), SPACING)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT" if prefix == "BTCV" else "MR"},
        "labels": {"background": 0, **{n: i + 1 for i, n in enumerate(names)}}, "file_ending": ".nii.gz"}))
    (root / "splits.json").write_text(json.dumps({"train": ids[:-validation], "validation": ids[-validation:]}))
    return root


def test_a_matched_row_reads_the_mr_share_without_any_ct_mr_row_having_run(tmp_path):
    bench = load_bench_script("abdomen_ct_mr")
    from unimos.pipelines.project import checked_manifest, plan_manifest

    btcv = _folder(tmp_path / "btcv", "BTCV", CT_NAMES, 18, 4)
    chaos = _folder(tmp_path / "chaos", "CHAOST2", MR_NAMES, 6, 2)
    out = tmp_path / "out"
    made = bench.write_manifests(btcv, chaos, out, seed=0)
    manifest = checked_manifest(made["manifests"]["ct_mr"])[0]
    plan = plan_manifest(manifest, out / "plan.json", "3mm-small")
    assert not (out / "cache").exists()  # as after `--rows ct_only_matched` alone: no ct_mr row preprocessed it
    share = bench.mr_patch_share(manifest, out, plan, "cmd", seed=0, draws=20000)
    # class -> modality -> dataset: 90% of draws pick one of the 13 classes, 4 of them also annotated in MR, then CT
    # or MR at even odds; 10% pick a random case, modality first, at even odds:
    # 0.9 * 4/13 * 1/2 + 0.1 * 1/2 = 0.1885 (the real collection's replayed share was 18.5%)
    assert abs(share - (0.9 * 4 / 13 / 2 + 0.1 / 2)) < 0.01
    assert (out / "cache" / "manifest_ct_mr").is_dir()
