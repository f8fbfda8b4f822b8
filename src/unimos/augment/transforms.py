"""Data augmentation of training patches: spatial transforms that move image, labels and annotated region together,
and intensity transforms of the image alone.

A sample is a dict of tensors for one patch, in the layout of `losses.targets.Targets` without the batch axis:

- ``image``: (C, *S) float, S = (X, Y, Z) or (X, Y);
- ``label``: (*S) int64 project class indices (>= 0);
- ``region``: (*S) bool, True where the label carries information.

Other keys (a case id, the candidate table) pass through untouched. A batch has the same keys with a leading batch
axis. Every random draw comes from the `torch.Generator` (or integer seed) passed in: the same seed gives the same
output, and no global random state is read or changed.

Spatial transforms (flips, rotation, zoom, optional elastic deformation) form one sampling grid per sample, built
once and applied once: the image by a single `grid_sample` (bi/trilinear) over all samples that need resampling, the
label and the region by one nearest-neighbour lookup on the same grid, so labels keep values that were in the input,
the region stays bool, and both stay aligned with the image.
Where the grid falls outside the patch the label is 0 and the region False (no supervision on padding), and the
image takes the patch minimum (or 0, see `AugmentConfig.image_padding`). Samples that draw only flips take an exact
`torch.flip` path without interpolation.

The defaults follow nnU-Net v2's training transforms (Isensee et al., Nature Methods 2021;
`nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py`, `get_training_transforms`) with the rotation and zoom ranges
narrowed to 15 degrees and 0.85-1.25.
"""

from __future__ import annotations

import torch

from unimos.augment.config import AugmentConfig, Seed, check_shapes
from unimos.augment.intensity import intensity_in_place
from unimos.augment.random_draws import as_generator
from unimos.augment.spatial import SpatialParams, apply_spatial, draw_spatial

__all__ = [
    "AugmentConfig",
    "SpatialParams",
    "apply_spatial",
    "augment",
    "augment_batch",
    "augment_intensity",
    "draw_spatial",
]


def augment(sample: dict, config: AugmentConfig, generator: Seed) -> dict:
    """Augment one patch: the sample dict with ``image`` (C, *S), ``label`` (*S), ``region`` (*S) transformed.

    Args:
        sample: one patch (see the module docstring); not modified.
        config: which transforms and how strong.
        generator: a `torch.Generator` (advanced by the draws) or an integer seed.

    Returns:
        A new dict: the three tensors replaced (fresh tensors, same dtypes and shapes), other keys passed through.
        Equal to `augment_batch` on the batch of this one sample with the same generator state.
    """
    check_shapes(sample, batched=False)
    batch = {key: sample[key].unsqueeze(0) for key in ("image", "label", "region")}
    out = augment_batch(batch, config, generator)
    result = dict(sample)
    result.update({key: out[key][0] for key in ("image", "label", "region")})
    return result


def augment_batch(batch: dict, config: AugmentConfig, generator: Seed) -> dict:
    """Augment a batch of patches, drawing parameters per sample and resampling all of them in one `grid_sample`.

    Args:
        batch: ``image`` (B, C, *S) float, ``label`` (B, *S) int64, ``region`` (B, *S) bool, S 2D or 3D; not modified.
        config: which transforms and how strong.
        generator: a `torch.Generator` (advanced by the draws) or an integer seed.

    Returns:
        A new dict with the three tensors replaced by fresh ones; other keys passed through.
    """
    check_shapes(batch, batched=True)
    generator = as_generator(generator)
    image = batch["image"]
    spatial_shape = tuple(batch["label"].shape[1:])
    params = draw_spatial(config, image.shape[0], spatial_shape, generator)
    out = apply_spatial(batch, params, image_padding=config.image_padding)
    if config.any_intensity:
        intensity_in_place(out["image"], config, generator)
    return out


def augment_intensity(image: torch.Tensor, config: AugmentConfig, generator: Seed) -> torch.Tensor:
    """The intensity transforms alone on an image batch (B, C, *S): noise, blur, brightness, contrast, gamma.

    Returns a new tensor; labels and region are never involved.
    """
    if image.dim() not in (4, 5) or not image.is_floating_point():
        raise ValueError(f"augment_intensity expects a float image batch (B, C, *S) with 2 or 3 spatial axes, got "
                         f"{tuple(image.shape)} {image.dtype}")
    out = image.clone()
    intensity_in_place(out, config, as_generator(generator))
    return out


# --------------------------------------------------------------------------------------------------- spatial


# ------------------------------------------------------------------------------------------------- intensity


# ---------------------------------------------------------------------------------------------------- helpers


