"""The ablation benchmark's sparse rows: slices kept along the asked axis, the same spacing in mm, input untouched."""

import hashlib

import nibabel as nib
import numpy as np
import pytest
import yaml

from tests.bench.scripts import load_bench_script
from tests.conftest import write_nifti


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("ablations")


def test_slice_step_keeps_annotated_slices_the_same_distance_apart_on_every_axis(bench):
    assert bench.slice_step(3.0) == 5
    assert bench.slice_step(1.5) == 10
    assert bench.slice_step(40.0) == 1


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_sparse_label_keeps_only_slices_along_the_axis_and_leaves_the_source_alone(bench, tmp_path, axis):
    spacing = (1.5, 3.0, 5.0)
    label = np.random.default_rng(axis).integers(0, 4, size=(40, 30, 20)).astype(np.uint8)
    source = write_nifti(tmp_path / "complete.nii.gz", label, np.diag([*spacing, 1.0]))
    before = hashlib.sha256(source.read_bytes()).hexdigest()

    kept = bench.sparse_label(source, axis, offset_seed=7, out=tmp_path / "sparse.nii.gz")

    step = bench.slice_step(spacing[axis])
    assert kept == list(range(7 % step, label.shape[axis], step))
    derived = np.asanyarray(nib.load(str(tmp_path / "sparse.nii.gz")).dataobj)
    moved_label, moved_derived = np.moveaxis(label, axis, 0), np.moveaxis(derived, axis, 0)
    for index in range(label.shape[axis]):
        expected = moved_label[index] if index in kept else np.zeros_like(moved_label[index])
        np.testing.assert_array_equal(moved_derived[index], expected)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_sparse_manifests_differ_only_in_the_sparse_source(bench, tmp_path):
    data = tmp_path / "data"
    label = np.ones((10, 10, 10), dtype=np.uint8)
    sources = []
    for name in ("btcv_like", "ct_sparse", "ct_test", "ct_unlabeled"):
        write_nifti(data / "labels_complete" / f"{name}_000.nii.gz", label, np.diag([3.0, 1.5, 3.0, 1.0]))
        sources.append({"name": name, "modality": "CT", "kind": "full",
                        "cases": [{"id": f"{name}_000", "image": f"images/{name}_000_0000.nii.gz",
                                   "label": f"labels_complete/{name}_000.nii.gz", "split": "train"}]})
    project = {"name": "demo", "classes": ["liver"]}
    (data / "manifest.yaml").write_text(yaml.safe_dump({"project": project, "sources": sources}))
    (data / "manifest_complete.yaml").write_text(yaml.safe_dump({"project": project, "sources": sources}))

    paths = bench.write_sparse_manifests(data, seed=0)

    assert set(paths) == {"sparse_axial", "sparse_sagittal", "sparse_coronal"}
    for name, axis in bench.AXES.items():
        doc = yaml.safe_load(paths[f"sparse_{name}"].read_text())
        assert [s["name"] for s in doc["sources"]] == ["btcv_like", "ct_sparse", "ct_test"]
        sparse = doc["sources"][1]["cases"][0]
        assert list(sparse["annotated_slices"]) == [axis]
        assert (data / sparse["label"]).exists()
        assert doc["sources"][0] == sources[0]


def test_rows_differ_only_in_what_they_ablate(bench):
    assert bench.row_config("sampler_mdc") == {"sampler": "mdc"}
    assert bench.row_config("entropy") == {"sampler": "cmd", "entropy_weight": 1.0}
    assert bench.row_config("sparse_coronal") == bench.row_config("sampler_cmd")
