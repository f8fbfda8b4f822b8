"""The augmentation's settings (nnU-Net v2's defaults, narrowed) and the checks on a batch's layout that every
transform relies on."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import torch

Seed = torch.Generator | int


@dataclass(frozen=True)
class AugmentConfig:
    """Which transforms a training patch gets; each is drawn independently per sample with its own probability.

    Attributes:
        flip_probability: chance of mirroring each allowed spatial axis, independently per axis. 0 by default
            (nnU-Net: 0.5): mirroring swaps the patient's left and right, so a network trained with it cannot tell
            kidney_right from kidney_left, nor (by position) the liver from the spleen.
        flip_axes: spatial axes that may be mirrored (0 = X); None: all.
        rotation_probability: chance a sample is rotated (nnU-Net: 0.2); a rotated 3D sample gets its own angle around
            each axis in `rotation_axes`, a 2D sample one in-plane angle.
        max_rotation_degrees: angles are uniform in [-max, +max] degrees.
        rotation_axes: 3D only: the axes rotated around (0 = X); None: all three. ``(2,)`` rotates in the X-Y plane
            only, nnU-Net's choice for strongly anisotropic spacing.
        scale_probability: chance a sample is zoomed (nnU-Net: 0.2).
        scale_range: (low, high) isotropic zoom factor, uniform; > 1 magnifies the anatomy (a smaller field of view).
        elastic_probability: chance of an elastic deformation; 0 (off) by default, as in nnU-Net v2.
        elastic_control_spacing_voxels: spacing of the coarse random displacement grid, in voxels.
        elastic_max_displacement_voxels: the largest displacement of a deformed sample, in voxels; each sample draws
            its maximum uniformly in [0, this].
        voxel_spacing_mm: spacing of the patch voxels (mm), per spatial axis; when given, rotations are physical (an
            organ keeps its shape on an anisotropic grid); None treats voxels as cubes.
        image_padding: value of the image where the grid falls outside the patch: "minimum" (the minimum of that
            channel of the patch, i.e. air for CT) or "zero" (the mean of a z-scored image).
        brightness_probability: chance of multiplying the image by a factor (nnU-Net: 0.15).
        brightness_range: the factor's range, uniform.
        contrast_probability: chance of scaling intensities around the channel mean, clipped to the original range
            afterwards (nnU-Net: 0.15).
        contrast_range: the factor's range; half the draws fall below 1 and half above when the range spans 1.
        gamma_probability: chance of a gamma curve on the min-max normalised intensities, the range restored after
            (nnU-Net: 0.3; 0.15 here).
        gamma_range: the exponent's range; half the draws fall below 1 and half above when the range spans 1.
        noise_probability: chance of additive Gaussian noise (nnU-Net: 0.1).
        noise_max_sigma: the noise standard deviation is uniform in [0, this], in units of the z-scored image.
        blur_probability: chance of a Gaussian blur (nnU-Net: 0.2).
        blur_sigma_range: the blur sigma in voxels, drawn per sample and axis (separable kernel, replicate edges).
    """

    flip_probability: float = 0.0
    flip_axes: tuple[int, ...] | None = None
    rotation_probability: float = 0.2
    max_rotation_degrees: float = 15.0
    rotation_axes: tuple[int, ...] | None = None
    scale_probability: float = 0.2
    scale_range: tuple[float, float] = (0.85, 1.25)
    elastic_probability: float = 0.0
    elastic_control_spacing_voxels: float = 16.0
    elastic_max_displacement_voxels: float = 4.0
    voxel_spacing_mm: tuple[float, ...] | None = None
    image_padding: Literal["minimum", "zero"] = "minimum"
    brightness_probability: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    contrast_probability: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    gamma_probability: float = 0.15
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_probability: float = 0.1
    noise_max_sigma: float = 0.1
    blur_probability: float = 0.2
    blur_sigma_range: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        for field in fields(self):
            if field.name.endswith("_probability"):
                value = getattr(self, field.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"AugmentConfig.{field.name} = {value} is not a probability; "
                                     "use a value in [0, 1]")
            if field.name.endswith("_range"):
                low, high = getattr(self, field.name)
                if not 0.0 < low <= high:
                    raise ValueError(f"AugmentConfig.{field.name} = {(low, high)} is not a range of positive "
                                     "numbers; give (low, high) with 0 < low <= high")
        if self.image_padding not in ("minimum", "zero"):
            raise ValueError(f"AugmentConfig.image_padding = {self.image_padding!r}; use 'minimum' or 'zero'")
        if self.max_rotation_degrees < 0 or self.noise_max_sigma < 0 or self.elastic_max_displacement_voxels < 0:
            raise ValueError("AugmentConfig: max_rotation_degrees, noise_max_sigma and elastic_max_displacement_voxels "
                             "must be >= 0")
        if self.elastic_control_spacing_voxels <= 0:
            raise ValueError("AugmentConfig.elastic_control_spacing_voxels must be > 0")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """A configuration that changes nothing: every probability is 0 (augment returns copies of the inputs)."""
        return cls(**{f.name: 0.0 for f in fields(cls) if f.name.endswith("_probability")})

    @property
    def any_intensity(self) -> bool:
        return any(getattr(self, f"{name}_probability") > 0
                   for name in ("brightness", "contrast", "gamma", "noise", "blur"))


def check_shapes(batch: dict, batched: bool) -> None:
    """Clear errors for a sample (or batch) whose keys, dtypes or shapes do not fit together."""
    what = "batch" if batched else "sample"
    missing = [key for key in ("image", "label", "region") if key not in batch]
    if missing:
        raise ValueError(f"augmentation {what} lacks {missing}; give a dict with 'image', 'label' and 'region'")
    image, label, region = batch["image"], batch["label"], batch["region"]
    lead = 1 if batched else 0
    if not image.is_floating_point():
        raise ValueError(f"{what} image must be float, got {image.dtype}; convert it with .float()")
    if label.dtype.is_floating_point or label.dtype == torch.bool:
        raise ValueError(f"{what} label must hold integer class indices, got {label.dtype}")
    if region.dtype != torch.bool:
        raise ValueError(f"{what} region must be bool, got {region.dtype}")
    n = label.dim() - lead
    layout = "(B, C, *S)" if batched else "(C, *S)"
    if n not in (2, 3) or image.dim() != label.dim() + 1 or tuple(image.shape[lead + 1:]) != tuple(label.shape[lead:]) \
            or (batched and image.shape[0] != label.shape[0]) or region.shape != label.shape:
        raise ValueError(f"{what} shapes do not fit: image {tuple(image.shape)} must be {layout}, label and region "
                         f"the same without C, with 2 or 3 spatial axes; got label {tuple(label.shape)}, "
                         f"region {tuple(region.shape)}")
