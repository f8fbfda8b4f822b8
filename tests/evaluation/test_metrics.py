import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from unimos.evaluation.metrics import ScoringRegion, score_structure

SHAPE = (10, 10, 10)


def _cube(start=(3, 3, 3), side=4, shape=SHAPE):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + side) for s in start)] = True
    return mask


def test_identical_masks_give_dsc_1_nsd_1_hd95_0():
    cube = _cube()
    score = score_structure(cube, cube.copy(), (0.7, 1.2, 3.0))
    assert (score.dsc, score.nsd, score.hd95, score.status) == (1.0, 1.0, 0.0, "scored")


# A 4-voxel cube and the same cube shifted one voxel along an axis whose spacing is the finest:
# overlap 3/4 of each cube -> DSC = 2 * 48 / (64 + 64) = 0.75. Of the 56 surface voxels of each cube, the
# 20 on the end faces (16 + the 4 interior voxels of the far face) lie one shift (in mm) from the other
# surface, the other 36 lie on it. 20/56 > 5%, so HD95 = the shift in mm (not 1 voxel); NSD below the shift
# = 36/56 = 9/14.
@pytest.mark.parametrize("axis, spacing, shift_mm", [(2, (2.0, 3.0, 0.5), 0.5), (0, (0.8, 2.0, 3.0), 0.8)])
def test_cube_shifted_by_one_voxel_gives_hand_computed_dsc_and_hd95_in_mm(axis, spacing, shift_mm):
    cube = _cube()
    score = score_structure(cube, np.roll(cube, 1, axis=axis), spacing)
    assert score.dsc == pytest.approx(0.75)
    assert score.hd95 == pytest.approx(shift_mm)


@pytest.mark.parametrize("axis, spacing, shift_mm", [(2, (2.0, 3.0, 0.5), 0.5), (0, (0.8, 2.0, 3.0), 0.8)])
def test_nsd_reaches_1_only_when_the_tolerance_covers_the_shift(axis, spacing, shift_mm):
    cube = _cube()
    shifted = np.roll(cube, 1, axis=axis)
    below = score_structure(cube, shifted, spacing, tolerance_mm=shift_mm - 0.01)
    above = score_structure(cube, shifted, spacing, tolerance_mm=shift_mm + 0.01)
    assert below.nsd == pytest.approx(9 / 14)
    assert above.nsd == 1.0


def test_distant_single_voxels_are_measured_along_the_anisotropic_axis():
    pred, ref = np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE, dtype=bool)
    pred[5, 5, 2], ref[5, 5, 5] = True, True
    score = score_structure(pred, ref, (1.0, 1.0, 2.5), tolerance_mm=2.0)
    assert (score.dsc, score.nsd, score.hd95, score.status) == (0.0, 0.0, 7.5, "scored")


@pytest.mark.parametrize("pred_empty, ref_empty, expected", [
    (True, True, (math.nan, math.nan, math.nan, "both_empty")),
    (False, True, (0.0, 0.0, math.nan, "false_positive")),
    (True, False, (0.0, 0.0, math.nan, "missed")),
])
def test_empty_mask_rules(pred_empty, ref_empty, expected):
    empty = np.zeros(SHAPE, dtype=bool)
    score = score_structure(empty if pred_empty else _cube(), empty if ref_empty else _cube(), (1.0, 1.0, 1.0))
    got = (score.dsc, score.nsd, score.hd95, score.status)
    for value, want in zip(got[:3], expected[:3]):
        assert (math.isnan(value) and math.isnan(want)) or value == want
    assert got[3] == expected[3]


def test_empty_rule_is_decided_inside_the_evaluation_mask():
    pred = _cube(start=(0, 0, 0), side=2)
    mask = np.ones(SHAPE, dtype=bool)
    mask[:3, :3, :3] = False  # the prediction lies only where nothing is scored
    score = score_structure(pred, np.zeros(SHAPE, dtype=bool), (1.0, 1.0, 1.0), evaluation_mask=mask)
    assert score.status == "both_empty" and math.isnan(score.dsc)


def test_sparse_reference_is_scored_only_on_its_annotated_slices():
    cube = _cube(start=(2, 2, 2), side=6)
    annotated = np.zeros(SHAPE, dtype=bool)
    annotated[:, :, [3, 5]] = True
    reference = cube & annotated  # what a sparse label holds: nothing between its slices
    wrong_off_slices = cube.copy()
    wrong_off_slices[:, :, 4] = False  # a hole between the annotated slices
    wrong_off_slices[0:2, 0:2, 8] = True  # a false positive on an unannotated slice
    clean = score_structure(cube, reference, (1.0, 1.0, 2.0), evaluation_mask=annotated)
    messy = score_structure(wrong_off_slices, reference, (1.0, 1.0, 2.0), evaluation_mask=annotated)
    assert (clean.dsc, clean.nsd, clean.hd95) == (1.0, 1.0, 0.0)
    assert messy == clean
    assert score_structure(wrong_off_slices, cube, (1.0, 1.0, 2.0)).dsc < 1.0  # unmasked, the errors count


def test_sparse_slices_are_scored_as_2d_contours():
    # One annotated slice; a 4x4 square vs the same square shifted one voxel along x (1.5 mm; y is 2 mm).
    # In 2D each contour has 12 pixels; 6 of them (the 4 leading-edge pixels and the 2 interior pixels of the
    # trailing edge) lie 1.5 mm from the other contour, the rest on it: NSD@1mm = 0.5, HD95 = 1.5 mm.
    # (A 3D surface of the one-slice slabs would make every pixel "surface" and give NSD 0.75.)
    annotated = np.zeros(SHAPE, dtype=bool)
    annotated[:, :, 4] = True
    square = _cube(start=(3, 3, 4), side=4) & annotated
    region = ScoringRegion.from_mask(annotated, {2: [4]})
    score = score_structure(np.roll(square, 1, axis=0), square, (1.5, 2.0, 3.0), tolerance_mm=1.0,
                            evaluation_mask=region)
    assert score.dsc == pytest.approx(0.75)
    assert score.nsd == pytest.approx(0.5)
    assert score.hd95 == pytest.approx(1.5)


def test_structure_missing_on_an_annotated_slice_is_measured_to_the_nearest_annotated_slice():
    # Reference: the same 4x4 square on slices 3 and 5 (2.5 mm apart each step); prediction: slice 3 only.
    # The 12 reference contour pixels on slice 5 lie 2 x 2.5 = 5 mm from the prediction's contour on slice 3;
    # the other 24 contour pixels match: NSD@2mm = 24/36, HD95 = 5 mm, DSC = 2*16/(16+32).
    annotated = np.zeros(SHAPE, dtype=bool)
    annotated[:, :, [3, 5]] = True
    reference = np.zeros(SHAPE, dtype=bool)
    reference[3:7, 3:7, :] = True
    reference &= annotated
    prediction = reference.copy()
    prediction[:, :, 5] = False
    score = score_structure(prediction, reference, (1.0, 1.0, 2.5), tolerance_mm=2.0,
                            evaluation_mask=ScoringRegion.from_mask(annotated, {2: [3, 5]}))
    assert score.dsc == pytest.approx(2 / 3)
    assert score.nsd == pytest.approx(2 / 3)
    assert score.hd95 == pytest.approx(5.0)


def test_voxels_outside_a_scattered_evaluation_mask_do_not_count():
    cube = _cube()
    ignored = np.zeros(SHAPE, dtype=bool)
    ignored[0:2, 7:9, 1:3] = True
    ignored[5, 5, 5] = True
    pred = cube | ignored
    score = score_structure(pred, cube & ~ignored, (1.0, 1.0, 1.0), evaluation_mask=~ignored)
    assert (score.dsc, score.nsd, score.hd95) == (1.0, 1.0, 0.0)


def test_nsd_and_hd95_agree_with_monai_surface_distances():
    torch = pytest.importorskip("torch")
    from monai.metrics import compute_surface_dice
    from monai.metrics.utils import get_mask_edges, get_surface_distance

    rng = np.random.default_rng(0)
    spacing = (0.8, 1.3, 2.5)
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own deprecated default argument
        warnings.simplefilter("ignore", FutureWarning)
        for _ in range(3):
            pred = ndimage.gaussian_filter(rng.random((30, 28, 20)), 3) > 0.5
            ref = ndimage.gaussian_filter(rng.random((30, 28, 20)), 3) > 0.5
            ours = score_structure(pred, ref, spacing, tolerance_mm=2.0)
            one_hot = [torch.stack([torch.tensor(~m), torch.tensor(m)])[None].float() for m in (pred, ref)]
            monai_nsd = compute_surface_dice(*one_hot, [2.0], spacing=spacing).item()
            assert ours.nsd == pytest.approx(monai_nsd, abs=1e-6)
            pred_edges, ref_edges = get_mask_edges(pred, ref, crop=True)
            pooled = np.concatenate([get_surface_distance(pred_edges, ref_edges, spacing=spacing),
                                     get_surface_distance(ref_edges, pred_edges, spacing=spacing)])
            assert ours.hd95 == pytest.approx(np.percentile(pooled, 95), abs=1e-4)
