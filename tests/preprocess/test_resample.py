import numpy as np
import pytest

from unimos.data.volume import Volume
from unimos.preprocess.resample import (
    map_annotated_slices,
    orientation_to_ras,
    reorient,
    reorient_slices,
    resample_image,
    resample_nearest,
    target_shape,
)


def _world(affine, index):
    return (affine @ np.append(np.asarray(index, dtype=float), 1.0))[:3]


def test_reorient_lps_to_ras_keeps_every_voxel_at_its_world_position():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 100, size=(5, 6, 7))
    lps = np.diag([-0.8, -0.9, 2.5, 1.0])
    lps[:3, 3] = [10.0, 20.0, -30.0]
    volume = Volume(array, lps)
    ras = reorient(volume, orientation_to_ras(lps))
    assert ras.orientation == "RAS"
    for index in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        world = _world(lps, index)
        ras_index = np.rint(np.linalg.solve(ras.affine, np.append(world, 1.0))[:3]).astype(int)
        assert ras.array[tuple(ras_index)] == array[index]


def test_resampling_keeps_the_field_of_view():
    volume = Volume(np.zeros((100, 80, 30), dtype=np.float32), np.diag([0.75, 0.75, 5.0, 1.0]))
    shape = target_shape(volume.shape, volume.spacing_mm, (3.0, 3.0, 3.0))
    assert shape == (25, 20, 50)
    out = resample_image(volume, shape)
    first_edge = _world(volume.affine, (-0.5, -0.5, -0.5))
    assert np.allclose(_world(out.affine, (-0.5, -0.5, -0.5)), first_edge)
    assert np.allclose(_world(out.affine, np.array(shape) - 0.5), _world(volume.affine, np.array(volume.shape) - 0.5))


def test_linear_resampling_of_a_ramp_stays_a_ramp():
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[:, None, None], (40, 4, 4)).copy()
    out = resample_image(Volume(ramp, np.eye(4)), (20, 4, 4))
    assert np.allclose(out.array[1:-1, 0, 0], np.arange(2.5, 38, 2)[:18], atol=1e-4)


def test_annotated_5mm_slice_becomes_exactly_one_1mm_slice():
    # 5 mm slices -> 1 mm: one annotated source slice must not be smeared over five target slices.
    labels = np.zeros((4, 4, 10), dtype=np.uint8)
    labels[:, :, 3] = 7
    labels[:, :, 2] = 0  # unannotated neighbour holds nothing
    volume = Volume(labels, np.diag([1.0, 1.0, 5.0, 1.0]))
    new_shape = target_shape(volume.shape, volume.spacing_mm, (1.0, 1.0, 1.0))
    pins = map_annotated_slices({2: (3,)}, volume.shape, new_shape)
    assert len(pins[2]) == 1
    (target, source), = pins[2].items()
    assert source == 3
    out = resample_nearest(volume, new_shape, pins)
    # the target slice's world z is the source slice's world z (centres coincide for an odd upsampling)
    assert np.isclose(_world(out.affine, (0, 0, target))[2], _world(volume.affine, (0, 0, 3))[2])
    assert (out.array[:, :, target] == 7).all()


def test_annotated_1mm_slices_survive_downsampling_to_3mm():
    # 1.5 mm -> 3 mm: each annotated slice maps to its nearest target slice; none vanishes.
    labels = np.zeros((3, 3, 40), dtype=np.uint8)
    annotated = (0, 5, 10, 11, 39)
    for k in annotated:
        labels[:, :, k] = 1 + k
    volume = Volume(labels, np.diag([1.0, 1.0, 1.5, 1.0]))
    new_shape = target_shape(volume.shape, volume.spacing_mm, (1.0, 1.0, 3.0))
    pins = map_annotated_slices({2: annotated}, volume.shape, new_shape)
    out = resample_nearest(volume, new_shape, pins)
    targets = pins[2]
    # 10 and 11 compete for one target slice; the nearer source slice wins; every other slice has its own
    assert len(targets) == 4
    for target, source in targets.items():
        assert (out.array[:, :, target] == 1 + source).all()
        assert abs(_world(out.affine, (0, 0, target))[2] - _world(volume.affine, (0, 0, source))[2]) <= 1.5


def test_reoriented_slice_indices_follow_the_flip():
    ornt = orientation_to_ras(np.diag([-1.0, 1.0, -1.0, 1.0]))
    assert reorient_slices({2: (0, 3)}, ornt, (4, 4, 10)) == {2: (6, 9)}


@pytest.mark.parametrize("shape", [(9, 7, 5), (10, 11, 3)])
def test_nearest_resampling_to_the_same_shape_is_identity(shape):
    array = np.arange(np.prod(shape)).reshape(shape)
    out = resample_nearest(Volume(array, np.eye(4)), shape)
    assert np.array_equal(out.array, array)


def test_per_class_linear_label_resampling_keeps_structures_and_matches_nearest_on_2x_upsampling():
    from unimos.preprocess.resample import resample_label_linear

    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[4:8, 4:8, 4:8] = 1
    labels[:, :, 8:10] = 2
    volume = Volume(labels, np.eye(4))
    linear = resample_label_linear(volume, (6, 6, 6)).array
    assert set(np.unique(linear)) == {0, 1, 2}
    assert (linear[2:4, 2:4, 2:4] == 1).all()
    upsampled = resample_label_linear(volume, (24, 24, 24)).array
    nearest = labels.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    # per-class linear rounds box corners off (0.75^3 < 0.5 at a corner voxel), nearest keeps them: close, not equal
    assert 0.97 < (upsampled == nearest).mean() < 1.0


@pytest.mark.parametrize("flip", [False, True])
def test_a_fortran_ordered_volume_is_reoriented_and_resampled_like_a_c_ordered_one(flip):
    # NIfTI voxels arrive in Fortran order and are no longer copied to C order on reading
    array = np.random.default_rng(0).normal(size=(21, 17, 13)).astype(np.float32)
    affine = np.diag([-0.8 if flip else 0.8, 0.9, 2.0, 1.0])
    c_order, f_order = Volume(array, affine), Volume(np.asfortranarray(array), affine)
    ornt = orientation_to_ras(affine)
    c_ras, f_ras = reorient(c_order, ornt), reorient(f_order, ornt)
    assert f_ras.array.flags.f_contiguous and np.array_equal(f_ras.array, c_ras.array)
    c_out, f_out = resample_image(c_ras, (9, 8, 26)), resample_image(f_ras, (9, 8, 26))
    assert f_out.array.flags.c_contiguous and np.allclose(f_out.array, c_out.array, atol=1e-6)
    assert np.array_equal(f_out.affine, c_out.affine)
