"""inference/sanity.py on hand-made arrays: which intensities each model refuses, and which axes are too thin."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import model_plan
from unimos.inference import sanity

HU_PLAN = model_plan(normalisation={"CT": {"scheme": "ct_clip_zscore", "clip": [-66.0, 145.0], "mean": 51.0,
                                          "std": 43.0}})
EIGHT_BIT_PLAN = model_plan(normalisation={"CT": {"scheme": "ct_clip_zscore", "clip": [0.0, 255.0], "mean": 134.0,
                                                 "std": 38.0}})
MR_PLAN = model_plan()


def _body(air: float, tissue: float, bright: float) -> np.ndarray:
    """A 20^3 volume: 30% air, 68% soft tissue, 2% bright (bone or contrast)."""
    values = np.full(8000, tissue, np.float32)
    values[:2400] = air
    values[-160:] = bright
    return values.reshape(20, 20, 20)


def test_percentiles_and_extremes_are_those_of_the_voxels():
    stats = sanity.intensity_stats(_body(-1000, 40, 700))
    assert (stats.p01, stats.p99, stats.minimum, stats.maximum, stats.n_voxels) == (-1000, 700, -1000, 700, 8000)


@pytest.mark.parametrize("array, ct_hu, ct_8bit, mr", [
    (_body(-1000, 40, 700), True, True, False),           # CT in HU: air at -1000
    (_body(24, 1064, 1724), False, False, True),          # the same + 1024: air near 0
    (_body(0, 134, 255), False, True, True),              # 8-bit window values (btcv): only an 8-bit model takes it
    (_body(1024, 1158, 1279), False, False, True),        # 8-bit + 1024
    (_body(0, 300, 900), False, False, True),             # MR: no negative values, brighter than an 8-bit window
    (_body(0, 0.3, 1.0), False, False, True),             # MR scaled to [0, 1]
])
def test_each_model_takes_only_its_own_intensities(array, ct_hu, ct_8bit, mr):
    assert (sanity.intensity_problem(array, "CT", HU_PLAN, "s") is None) == ct_hu
    assert (sanity.intensity_problem(array, "CT", EIGHT_BIT_PLAN, "s") is None) == ct_8bit
    assert (sanity.intensity_problem(array, "MR", MR_PLAN, "s") is None) == mr


def test_a_refusal_names_the_measured_number():
    problem = sanity.intensity_problem(_body(3, 1064, 1724), "CT", HU_PLAN, "scan.nii.gz")
    assert problem is not None and problem.where == "scan.nii.gz"
    assert "its 1st percentile is 3 (a CT in Hounsfield units has air near -1000" in problem.problem
    assert "training organs span -66 to 145" in problem.problem and "--force" in problem.fix


def test_constant_and_absurd_volumes_are_refused_for_every_modality():
    for modality in ("CT", "MR", "PET"):
        assert "have the value 7" in sanity.intensity_problem(np.full((4, 4, 4), 7.0), modality, HU_PLAN, "s").problem
        absurd = _body(-1000, 40, 700)
        absurd[0, 0, 0] = -5e7
        assert "absurd magnitude" in sanity.intensity_problem(absurd, modality, HU_PLAN, "s").problem


@pytest.mark.parametrize("tag, modality, refused", [("MR", "CT", True), ("CT", "MR", True), ("CT", "CT", False),
                                                    ("OT", "CT", False), (None, "CT", False)])
def test_a_dicom_modality_tag_refuses_only_another_imaging_modality(tag, modality, refused):
    assert (sanity.dicom_tag_problem(tag, modality, "series") is not None) == refused


def test_a_thin_axis_is_named_in_the_scans_own_axis_order():
    # an LPS-like scan whose first axis runs along z: 4 slices of 2.5 mm = 10 mm, 3 voxels at 3 mm, patch 16 there
    affine = np.array([[0, 0, -0.8, 0], [0, -0.8, 0, 0], [2.5, 0, 0, 0], [0, 0, 0, 1.0]])
    warnings = sanity.thin_axis_warnings((4, 512, 512), affine, [3.0, 3.0, 3.0], [96, 96, 16], "s")
    assert len(warnings) == 1 and "axis 0 has 3 voxel(s) on the model's 3 mm grid" in warnings[0]
    assert "4 voxel(s) of 2.5 mm" in warnings[0] and "patch is 96 x 96 x 16" in warnings[0]
    assert sanity.thin_axis_warnings((8, 512, 512), affine, [3.0, 3.0, 3.0], [96, 96, 16], "s") == []  # 7 >= 4


def test_a_2d_model_checks_only_the_in_plane_axes():
    affine = np.diag([1.0, 1.0, 5.0, 1.0])
    assert sanity.thin_axis_warnings((300, 300, 1), affine, [1.0, 1.0, 5.0], [128, 128], "s") == []
    warnings = sanity.thin_axis_warnings((300, 20, 1), affine, [1.0, 1.0, 5.0], [128, 128], "s")
    assert len(warnings) == 1 and "axis 1 has 20 voxel(s)" in warnings[0] and "patch is 128 x 128" in warnings[0]
