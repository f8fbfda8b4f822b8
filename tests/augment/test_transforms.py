"""Augmentation moves image, labels and annotated region together, keeps label values, and is reproducible."""

from __future__ import annotations

import math

import pytest
import torch

from unimos.augment.transforms import (
    AugmentConfig,
    SpatialParams,
    apply_spatial,
    augment,
    augment_batch,
    augment_intensity,
    draw_spatial,
)

SPATIAL_ONLY = dict(brightness_probability=0.0, contrast_probability=0.0, gamma_probability=0.0,
                    noise_probability=0.0, blur_probability=0.0)
INTENSITY_ONLY = dict(flip_probability=0.0, rotation_probability=0.0, scale_probability=0.0)
EVERYTHING = dict(flip_probability=0.5, rotation_probability=1.0, scale_probability=1.0, elastic_probability=1.0,
                  brightness_probability=1.0, contrast_probability=1.0, gamma_probability=1.0,
                  noise_probability=1.0, blur_probability=1.0)


def marker_sample(shape=(15, 13, 11), position=(3, 4, 2), channels=1) -> dict:
    """A patch that is 0 everywhere except one marker voxel: image 10, label 3, region True."""
    image = torch.zeros(channels, *shape)
    label = torch.zeros(shape, dtype=torch.int64)
    region = torch.zeros(shape, dtype=torch.bool)
    image[(slice(None), *position)] = 10.0
    label[position] = 3
    region[position] = True
    return {"image": image, "label": label, "region": region}


def box_sample(shape=(24, 24, 24), box=((5, 10), (12, 17), (8, 13))) -> dict:
    """Image 10 in a box on 0 (and gentle noise), label 2 and region True in the same box."""
    generator = torch.Generator().manual_seed(0)
    image = 0.1 * torch.rand(1, *shape, generator=generator)
    label = torch.zeros(shape, dtype=torch.int64)
    region = torch.zeros(shape, dtype=torch.bool)
    index = tuple(slice(a, b) for a, b in box)
    image[(slice(None), *index)] = 10.0
    label[index] = 2
    region[index] = True
    return {"image": image, "label": label, "region": region}


def stack(sample: dict, copies: int) -> dict:
    return {key: torch.stack([value] * copies) for key, value in sample.items()}


def centroid(mask: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(mask).double().mean(dim=0)


def quarter_turn(axes=(0, 1), n=3) -> torch.Tensor:
    """Voxel-space matrix of a 90-degree rotation in the plane of `axes`."""
    matrix = torch.eye(n, dtype=torch.float64)
    first, second = axes
    matrix[first, first] = matrix[second, second] = 0.0
    matrix[first, second], matrix[second, first] = -1.0, 1.0
    return matrix


def test_flips_move_image_label_and_region_together():
    sample = marker_sample()
    config = AugmentConfig(flip_probability=1.0, **{**SPATIAL_ONLY, "rotation_probability": 0.0,
                                                    "scale_probability": 0.0})
    out = augment(sample, config, 0)
    expected = (15 - 1 - 3, 13 - 1 - 4, 11 - 1 - 2)
    assert out["image"][(0, *expected)] == 10.0 and out["image"].sum() == 10.0
    assert torch.nonzero(out["label"] == 3).tolist() == [list(expected)]
    assert torch.nonzero(out["region"]).tolist() == [list(expected)]


def test_random_flips_keep_the_marker_in_all_three_for_every_seed():
    sample = marker_sample()
    config = AugmentConfig(**{**SPATIAL_ONLY, "flip_probability": 0.5, "rotation_probability": 0.0,
                              "scale_probability": 0.0})
    seen = set()
    for seed in range(16):
        out = augment(sample, config, seed)
        where = torch.nonzero(out["image"][0] == 10.0).tolist()
        assert where == torch.nonzero(out["label"] == 3).tolist() == torch.nonzero(out["region"]).tolist()
        seen.add(tuple(where[0]))
    assert len(seen) > 4  # the flips really vary between seeds


def test_flip_only_path_is_exact():
    generator = torch.Generator().manual_seed(1)
    sample = {"image": torch.randn(2, 8, 9, 10, generator=generator),
              "label": torch.randint(0, 5, (8, 9, 10), generator=generator),
              "region": torch.rand(8, 9, 10, generator=generator) > 0.5}
    params = SpatialParams(torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)).unsqueeze(0))
    out = apply_spatial(stack(sample, 1), params)
    assert torch.equal(out["image"][0], sample["image"].flip([1, 3]))
    assert torch.equal(out["label"][0], sample["label"].flip([0, 2]))
    assert torch.equal(out["region"][0], sample["region"].flip([0, 2]))


@pytest.mark.parametrize("shape", [(10, 10, 10), (9, 9, 9), (12, 12, 7)])
def test_quarter_turn_moves_image_label_and_region_together(shape):
    position = (2, 6, 3)
    sample = marker_sample(shape=shape, position=position)
    matrix = quarter_turn((0, 1))
    out = apply_spatial(stack(sample, 1), SpatialParams(matrix.unsqueeze(0)))
    # output offset v samples input offset M v, so the marker (input offset p) lands at v = M^T p
    centre = torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float64)
    expected = (matrix.T @ (torch.tensor(position, dtype=torch.float64) - centre) + centre).round().long().tolist()
    assert torch.nonzero(out["label"][0] == 3).tolist() == [expected]
    assert torch.nonzero(out["region"][0]).tolist() == [expected]
    assert out["image"][(0, 0, *expected)] == pytest.approx(10.0, abs=1e-4)
    assert out["image"].sum() == pytest.approx(10.0, abs=1e-3)


def test_quarter_turn_in_2d_matches_rot90():
    generator = torch.Generator().manual_seed(2)
    sample = {"image": torch.randn(1, 8, 8, generator=generator),
              "label": torch.randint(0, 4, (8, 8), generator=generator),
              "region": torch.rand(8, 8, generator=generator) > 0.5}
    out = apply_spatial(stack(sample, 1), SpatialParams(quarter_turn((0, 1), n=2).unsqueeze(0)))
    # output offset (v0, v1) samples input offset (-v1, v0): torch.rot90 with k=-1
    assert torch.equal(out["label"][0], torch.rot90(sample["label"], k=-1, dims=(0, 1)))
    assert torch.equal(out["region"][0], torch.rot90(sample["region"], k=-1, dims=(0, 1)))
    assert torch.allclose(out["image"][0], torch.rot90(sample["image"], k=-1, dims=(1, 2)), atol=1e-5)


def test_random_rotation_zoom_and_deformation_keep_image_label_and_region_aligned():
    sample = box_sample()
    config = AugmentConfig(max_rotation_degrees=45.0, rotation_probability=0.5, scale_probability=0.5,
                           elastic_probability=0.5, elastic_max_displacement_voxels=3.0, **{
                               k: v for k, v in SPATIAL_ONLY.items()})
    out = augment_batch(stack(sample, 8), config, torch.Generator().manual_seed(3))
    for b in range(8):
        label_box = out["label"][b] == 2
        assert torch.equal(label_box, out["region"][b])  # one nearest lookup moves both
        assert label_box.sum() > 0
        image_box = out["image"][b, 0] > 5.0
        assert torch.linalg.vector_norm(centroid(label_box) - centroid(image_box)) < 1.0
        # the box keeps roughly its volume (zoom at most 1.25 per axis)
        assert 125 / 1.25 ** 3 / 1.5 < label_box.sum() < 125 * 1.5


def test_labels_stay_within_the_values_of_the_input():
    generator = torch.Generator().manual_seed(4)
    values = torch.tensor([0, 3, 7, 12])
    label = values[torch.randint(0, 4, (20, 18, 16), generator=generator)]
    sample = {"image": torch.randn(1, 20, 18, 16, generator=generator), "label": label,
              "region": torch.rand(20, 18, 16, generator=generator) > 0.3}
    config = AugmentConfig(max_rotation_degrees=40.0, **EVERYTHING)
    for seed in range(5):
        out = augment(sample, config, seed)
        assert out["label"].dtype == torch.int64 and out["region"].dtype == torch.bool
        assert set(out["label"].unique().tolist()) <= set(values.tolist())


def test_region_is_false_and_label_zero_where_the_grid_samples_outside_the_patch():
    shape = (15, 15, 15)
    sample = {"image": torch.rand(1, *shape) + 1.0, "label": torch.full(shape, 4),
              "region": torch.ones(shape, dtype=torch.bool)}
    # zoom out by 2: output voxel i samples input voxel 2 i - 7 per axis, inside the patch for i in 4..10
    params = SpatialParams((2.0 * torch.eye(3, dtype=torch.float64)).unsqueeze(0))
    out = apply_spatial(stack(sample, 1), params)
    inside_axis = torch.zeros(15, dtype=torch.bool)
    inside_axis[4:11] = True
    inside = inside_axis.view(-1, 1, 1) & inside_axis.view(1, -1, 1) & inside_axis.view(1, 1, -1)
    assert torch.equal(out["region"][0], inside)
    assert torch.equal(out["label"][0], torch.where(inside, 4, 0))
    # the image is padded with the patch minimum, so far outside it equals that minimum
    assert out["image"][0, 0, 0, 0, 0] == pytest.approx(float(sample["image"].min()))


def test_image_padding_zero_fills_outside_with_zero():
    shape = (15, 15, 15)
    sample = {"image": torch.rand(1, *shape) + 1.0, "label": torch.full(shape, 4),
              "region": torch.ones(shape, dtype=torch.bool)}
    params = SpatialParams((2.0 * torch.eye(3, dtype=torch.float64)).unsqueeze(0))
    out = apply_spatial(stack(sample, 1), params, image_padding="zero")
    assert out["image"][0, 0, 0, 0, 0] == 0.0


def test_same_seed_gives_identical_output_and_different_seeds_differ():
    sample = box_sample()
    config = AugmentConfig(**EVERYTHING)
    first = augment(sample, config, 11)
    again = augment(sample, config, torch.Generator().manual_seed(11))
    other = augment(sample, config, 12)
    for key in ("image", "label", "region"):
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["image"], other["image"])


def test_augment_equals_augment_batch_on_a_batch_of_one():
    sample = box_sample()
    config = AugmentConfig(**EVERYTHING)
    single = augment(sample, config, 5)
    batched = augment_batch(stack(sample, 1), config, 5)
    for key in ("image", "label", "region"):
        assert torch.equal(single[key], batched[key][0])


def test_none_config_is_the_identity_and_returns_fresh_tensors():
    sample = box_sample()
    sample["case_id"] = "case_007"
    out = augment(sample, AugmentConfig.none(), 0)
    for key in ("image", "label", "region"):
        assert torch.equal(out[key], sample[key])
        assert out[key].data_ptr() != sample[key].data_ptr()
    assert out["case_id"] == "case_007"


def test_augment_never_modifies_its_input():
    sample = box_sample()
    before = {key: value.clone() for key, value in sample.items()}
    augment(sample, AugmentConfig(**EVERYTHING), 0)
    for key in before:
        assert torch.equal(before[key], sample[key])


@pytest.mark.parametrize("shape", [(32, 28), (16, 14, 12)], ids=["2d", "3d"])
def test_2d_and_3d_patches_keep_shapes_dtypes_and_alignment(shape):
    generator = torch.Generator().manual_seed(6)
    batch = {"image": torch.randn(3, 2, *shape, generator=generator),
             "label": torch.randint(0, 5, (3, *shape), generator=generator),
             "region": torch.rand(3, *shape, generator=generator) > 0.2}
    out = augment_batch(batch, AugmentConfig(max_rotation_degrees=30.0, **EVERYTHING), generator)
    for key in ("image", "label", "region"):
        assert out[key].shape == batch[key].shape and out[key].dtype == batch[key].dtype
    assert torch.isfinite(out["image"]).all()
    assert set(out["label"].unique().tolist()) <= set(range(5))
    assert (out["label"][~out["region"]] >= 0).all()


def test_intensity_transforms_never_touch_label_or_region():
    sample = box_sample()
    config = AugmentConfig(**{**EVERYTHING, **INTENSITY_ONLY, "elastic_probability": 0.0})
    out = augment(sample, config, 7)
    assert torch.equal(out["label"], sample["label"])
    assert torch.equal(out["region"], sample["region"])
    assert not torch.equal(out["image"], sample["image"])


def test_brightness_multiplies_by_a_factor_in_range():
    image = torch.rand(4, 1, 8, 8, 8) + 0.5
    only = AugmentConfig(**{**AugmentConfig.none().__dict__, "brightness_probability": 1.0})
    out = augment_intensity(image, only, 0)
    ratio = out / image
    for b in range(4):
        factor = float(ratio[b].mean())
        assert 0.75 <= factor <= 1.25
        assert torch.allclose(ratio[b], torch.full_like(ratio[b], factor), atol=1e-5)


def test_gamma_keeps_the_intensity_range_and_contrast_stays_within_it():
    image = torch.randn(4, 2, 10, 10, 10)
    low, high = image.amin(dim=(2, 3, 4)), image.amax(dim=(2, 3, 4))
    gamma_only = AugmentConfig(**{**AugmentConfig.none().__dict__, "gamma_probability": 1.0})
    out = augment_intensity(image, gamma_only, 1)
    assert not torch.allclose(out, image)
    # min-max normalised, curved, range restored
    assert torch.allclose(out.amin(dim=(2, 3, 4)), low, atol=1e-5)
    assert torch.allclose(out.amax(dim=(2, 3, 4)), high, atol=1e-5)
    contrast_only = AugmentConfig(**{**AugmentConfig.none().__dict__, "contrast_probability": 1.0})
    out = augment_intensity(image, contrast_only, 1)
    assert not torch.allclose(out, image)
    assert (out.amin(dim=(2, 3, 4)) >= low - 1e-6).all() and (out.amax(dim=(2, 3, 4)) <= high + 1e-6).all()
    assert torch.allclose(out.mean(dim=(2, 3, 4)), image.mean(dim=(2, 3, 4)), atol=0.05)


def test_noise_is_at_most_a_tenth_of_a_standard_deviation():
    image = torch.zeros(3, 1, 20, 20, 20)
    only = AugmentConfig(**{**AugmentConfig.none().__dict__, "noise_probability": 1.0})
    out = augment_intensity(image, only, 2)
    assert (out.std(dim=(1, 2, 3, 4)) < 0.1 * 1.05).all() and out.abs().sum() > 0


def test_blur_smooths_noise_and_keeps_a_constant_image_constant():
    only = AugmentConfig(**{**AugmentConfig.none().__dict__, "blur_probability": 1.0})
    noise = torch.randn(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    blurred = augment_intensity(noise, only, 3)
    assert (blurred.std(dim=(1, 2, 3, 4)) < 0.8 * noise.std(dim=(1, 2, 3, 4))).all()
    constant = torch.full((2, 1, 6, 6, 6), 3.0)
    assert torch.allclose(augment_intensity(constant, only, 3), constant)


def test_rotations_are_physical_on_anisotropic_voxels():
    config = AugmentConfig(rotation_probability=1.0, max_rotation_degrees=30.0, voxel_spacing_mm=(1.0, 1.0, 3.0),
                           flip_probability=0.0, scale_probability=0.0)
    params = draw_spatial(config, 4, (16, 16, 8), 0)
    spacing = torch.diag(torch.tensor([1.0, 1.0, 3.0], dtype=torch.float64))
    physical = spacing @ params.matrix @ torch.linalg.inv(spacing)  # mm -> mm
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose(physical @ physical.transpose(1, 2), eye, atol=1e-10)


def test_drawn_rotations_stay_within_the_configured_angle():
    config = AugmentConfig(rotation_probability=1.0, max_rotation_degrees=15.0, flip_probability=0.0,
                           scale_probability=0.0)
    for n, shape in ((2, (16, 16)), (3, (16, 16, 16))):
        matrix = draw_spatial(config, 32, shape, 0).matrix
        # angle of the whole rotation: for 3D at most the sum of the three axis angles
        trace = matrix.diagonal(dim1=-2, dim2=-1).sum(-1)
        angle = torch.arccos(((trace - (n - 2)) / 2).clamp(-1, 1))
        assert (angle <= math.radians(15.0) * (1 if n == 2 else 3) + 1e-9).all()
        assert (angle > 0).all()


def test_bad_inputs_get_clear_errors():
    sample = marker_sample()
    with pytest.raises(ValueError, match="region must be bool"):
        augment({**sample, "region": sample["region"].long()}, AugmentConfig(), 0)
    with pytest.raises(ValueError, match="shapes do not fit"):
        augment({**sample, "label": sample["label"][:-1]}, AugmentConfig(), 0)
    with pytest.raises(ValueError, match="not a probability"):
        AugmentConfig(noise_probability=1.5)
    with pytest.raises(TypeError, match="generator"):
        augment(sample, AugmentConfig(), 0.5)


def test_batch_draws_its_parameters_per_sample():
    out = augment_batch(stack(box_sample(), 4), AugmentConfig(**EVERYTHING), 8)
    images = out["image"]
    assert all(not torch.equal(images[0], images[b]) for b in range(1, 4))


def test_default_augmentation_never_mirrors_left_and_right():
    # sided classes (kidney_right / kidney_left) would become indistinguishable if patches were mirrored
    sample = marker_sample()
    config = AugmentConfig(**{**SPATIAL_ONLY, "rotation_probability": 0.0, "scale_probability": 0.0})
    where = {tuple(torch.nonzero(augment(sample, config, seed)["label"] == 3).tolist()[0]) for seed in range(16)}
    assert where == {tuple(torch.nonzero(sample["label"] == 3).tolist()[0])}
