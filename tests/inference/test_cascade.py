"""Coarse-to-fine cascade: the region, the crop that keeps world positions, the paste back, and end to end."""

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import write_nifti
from tests.inference.test_predictor import tiny_model  # noqa: F401  (fixture)
from unimos.data.volume import Volume
from unimos.errors import UnimosError
from unimos.inference.cascade import crop_volume, paste, predict_cascade, roi_box
from unimos.inference.predictor import PredictOptions, predict_files

AFFINE = np.array([[0, -1.5, 0, 10], [2.0, 0, 0, -4], [0, 0, 3.0, 7], [0, 0, 0, 1]])


def test_roi_box_grows_the_labeled_box_by_the_margin_in_mm_per_axis():
    labels = np.zeros((30, 30, 30), dtype=np.uint8)
    labels[10:12, 10:12, 10:12] = 3
    box = roi_box(Volume(labels, AFFINE), margin_mm=6.0)  # spacing (2.0, 1.5, 3.0) mm: 3, 4 and 2 voxels
    assert box == ((7, 6, 8), (15, 16, 14))
    assert roi_box(Volume(np.zeros((5, 5, 5), np.uint8), AFFINE), 6.0) is None


def test_crop_keeps_every_voxel_at_its_world_position_and_paste_puts_it_back():
    array = np.arange(20 * 18 * 16, dtype=np.int32).reshape(20, 18, 16)
    full = Volume(array, AFFINE)
    box = ((3, 4, 5), (11, 12, 13))
    crop = crop_volume(full, box)
    voxel = np.array([2, 3, 4, 1.0])
    world = crop.affine @ voxel
    back = np.linalg.inv(full.affine) @ world
    assert np.allclose(back[:3], [5, 7, 9]) and crop.array[2, 3, 4] == array[5, 7, 9]
    pasted = paste(crop, box, full)
    assert np.array_equal(pasted.array[3:11, 4:12, 5:13], array[3:11, 4:12, 5:13])
    assert pasted.array.sum() == array[3:11, 4:12, 5:13].sum() and np.array_equal(pasted.affine, full.affine)


def test_cascade_runs_the_fine_model_only_inside_the_region(tiny_model, tmp_path):  # noqa: F811
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    image = np.full((30, 26, 14), -1000, dtype=np.int16)
    image[5:25, 5:21, 2:12] = 40
    path = write_nifti(tmp_path / "in" / "scan_0000.nii.gz", image, affine)
    channels = [Volume(image.astype(np.float32), affine)]
    seen = []

    def fake_predict(model, inputs, options, stages=None, window=None):
        seen.append(inputs[0])
        if len(seen) == 1:  # the coarse stage finds one organ voxel block
            found = np.zeros(inputs[0].shape, np.uint8)
            found[10:12, 8:9, 5:7] = 1
            return Volume(found, inputs[0].affine)
        return Volume(np.full(inputs[0].shape, 1, np.uint8), inputs[0].affine)  # the fine stage labels its box

    stages: dict[str, float] = {}
    labels, region = predict_cascade(fake_predict, tiny_model, tiny_model, channels, PredictOptions(), stages,
                                     margin_mm=3.0)
    # margin 3 mm: 2, 2 and 1 voxels at (1.5, 1.5, 4.0) mm
    assert region["roi_low"] == [8, 6, 4] and region["roi_high"] == [14, 11, 8]
    assert seen[1].shape == (6, 5, 4) and np.array_equal(seen[1].array, channels[0].array[8:14, 6:11, 4:8])
    assert labels.shape == image.shape and labels.array.sum() == 6 * 5 * 4
    assert labels.array[8:14, 6:11, 4:8].all() and "coarse" in stages
    assert region["roi_share"] == pytest.approx(120 / (30 * 26 * 14))

    records = predict_files(tiny_model, [path], tmp_path / "out", PredictOptions(), coarse=tiny_model,
                            roi_margin_mm=3.0)
    assert records[0].error is None and records[0].cascade["margin_mm"] == 3.0
    written = nib.load(records[0].output)
    assert written.shape == image.shape and np.allclose(written.affine, np.diag([1.5, 1.5, 4.0, 1.0]))


def test_cascade_refuses_stages_with_different_organs(tiny_model, tmp_path):  # noqa: F811
    import copy

    other = copy.copy(tiny_model)
    other.class_names = ["background", "spleen"]
    path = write_nifti(tmp_path / "in" / "scan_0000.nii.gz", np.zeros((10, 10, 10), np.int16))
    with pytest.raises(UnimosError, match="same taxonomy"):
        predict_files(tiny_model, [path], tmp_path / "out", PredictOptions(), coarse=other)
    assert not (tmp_path / "out").exists()
