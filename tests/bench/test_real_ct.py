"""The real-CT benchmark's checks: geometry comparison that can fail, organ volumes in millilitres."""

import numpy as np
import pytest

from tests.bench.scripts import load_bench_script
from tests.conftest import write_nifti


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("real_ct")


def test_same_geometry_accepts_the_input_grid_and_rejects_a_shifted_or_resized_one(bench, tmp_path):
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    source = write_nifti(tmp_path / "ct.nii.gz", np.zeros((8, 8, 4), np.int16), affine)
    same = write_nifti(tmp_path / "same.nii.gz", np.zeros((8, 8, 4), np.uint8), affine)
    shifted_affine = affine.copy()
    shifted_affine[0, 3] = 0.5
    shifted = write_nifti(tmp_path / "shifted.nii.gz", np.zeros((8, 8, 4), np.uint8), shifted_affine)
    resized = write_nifti(tmp_path / "resized.nii.gz", np.zeros((8, 8, 5), np.uint8), affine)

    assert bench.same_geometry(same, source)[0]
    assert not bench.same_geometry(shifted, source)[0]
    equal, why = bench.same_geometry(resized, source)
    assert not equal and "(8, 8, 5)" in why


def test_organ_volumes_are_voxel_counts_times_voxel_volume(bench, tmp_path):
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5, :2, :1] = 1  # 10 voxels of 8 mm^3: 0.08 mL, shown to 0.1 mL
    labels[0, 0, 5] = 2  # 0.008 mL
    path = write_nifti(tmp_path / "pred.nii.gz", labels, np.diag([2.0, 2.0, 2.0, 1.0]))
    names = {"0": "background", "1": "liver", "2": "spleen", "3": "stomach"}
    assert bench.organ_volumes_ml(path, names) == {"liver": 0.1, "spleen": 0.0, "stomach": 0.0}
