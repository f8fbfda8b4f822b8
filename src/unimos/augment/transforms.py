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

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "AugmentConfig",
    "SpatialParams",
    "apply_spatial",
    "augment",
    "augment_batch",
    "augment_intensity",
    "draw_spatial",
]

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


@dataclass
class SpatialParams:
    """The spatial transform of each sample of a batch, in voxels, axes in tensor order (X, Y, Z).

    Attributes:
        matrix: (B, n, n) float64; the output voxel at offset v (voxels) from the patch centre samples the input at
            offset ``matrix @ v`` (+ the displacement there). A diagonal of +-1 is a pure mirror.
        displacement: (B, n, *C) elastic displacement (input voxels) on a coarse control grid C spanning the patch
            corner to corner, interpolated linearly to every voxel and added after the matrix; None: no deformation.
    """

    matrix: torch.Tensor
    displacement: torch.Tensor | None = None

    def needs_resampling(self) -> torch.Tensor:
        """(B,) bool: True where the transform is more than a mirror (rotation, zoom or deformation)."""
        n = self.matrix.shape[-1]
        eye = torch.eye(n, dtype=self.matrix.dtype)
        mirror = (self.matrix.abs() - eye).abs().amax(dim=(-2, -1)) < 1e-9
        if self.displacement is not None:
            mirror &= self.displacement.detach().abs().flatten(1).amax(dim=1).cpu() == 0
        return ~mirror


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
    _check_shapes(sample, batched=False)
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
    _check_shapes(batch, batched=True)
    generator = _as_generator(generator)
    image = batch["image"]
    spatial_shape = tuple(batch["label"].shape[1:])
    params = draw_spatial(config, image.shape[0], spatial_shape, generator)
    out = apply_spatial(batch, params, image_padding=config.image_padding)
    if config.any_intensity:
        _intensity_in_place(out["image"], config, generator)
    return out


def augment_intensity(image: torch.Tensor, config: AugmentConfig, generator: Seed) -> torch.Tensor:
    """The intensity transforms alone on an image batch (B, C, *S): noise, blur, brightness, contrast, gamma.

    Returns a new tensor; labels and region are never involved.
    """
    if image.dim() not in (4, 5) or not image.is_floating_point():
        raise ValueError(f"augment_intensity expects a float image batch (B, C, *S) with 2 or 3 spatial axes, got "
                         f"{tuple(image.shape)} {image.dtype}")
    out = image.clone()
    _intensity_in_place(out, config, _as_generator(generator))
    return out


# --------------------------------------------------------------------------------------------------- spatial
def draw_spatial(config: AugmentConfig, batch_size: int, spatial_shape: tuple[int, ...],
                 generator: Seed) -> SpatialParams:
    """Draw flips, rotation, zoom and elastic displacement for each of `batch_size` patches of `spatial_shape`."""
    generator = _as_generator(generator)
    n = len(spatial_shape)
    if n not in (2, 3):
        raise ValueError(f"patches must be 2D or 3D, got spatial shape {spatial_shape}")
    flip_axes = range(n) if config.flip_axes is None else config.flip_axes
    allowed = torch.zeros(n, dtype=torch.bool)
    allowed[list(flip_axes)] = True
    flips = (torch.rand(batch_size, n, generator=generator) < config.flip_probability) & allowed

    rotate = torch.rand(batch_size, generator=generator) < config.rotation_probability
    limit = math.radians(config.max_rotation_degrees)
    angles = _uniform(-limit, limit, (batch_size, 3), generator)
    if n == 3 and config.rotation_axes is not None:
        keep = torch.zeros(3, dtype=torch.bool)
        keep[list(config.rotation_axes)] = True
        angles = angles * keep
    angles = angles * rotate.unsqueeze(1)

    scale = torch.rand(batch_size, generator=generator) < config.scale_probability
    zoom = torch.where(scale, _uniform(*config.scale_range, (batch_size,), generator), 1.0)

    elastic = torch.rand(batch_size, generator=generator) < config.elastic_probability

    signs = torch.where(flips, -1.0, 1.0).to(torch.float64)
    rotation = _rotation_matrices(angles, n)
    if config.voxel_spacing_mm is not None:
        if len(config.voxel_spacing_mm) != n:
            raise ValueError(f"AugmentConfig.voxel_spacing_mm {config.voxel_spacing_mm} has "
                             f"{len(config.voxel_spacing_mm)} entries for {n}D patches; give one per spatial axis")
        spacing = torch.tensor(config.voxel_spacing_mm, dtype=torch.float64)
        # rotate in mm: voxels -> mm (scale by spacing), rotate, mm -> voxels
        rotation = rotation * spacing.view(1, 1, n) / spacing.view(1, n, 1)
    matrix = rotation / zoom.view(-1, 1, 1) * signs.unsqueeze(1)  # R @ diag(signs) / zoom

    displacement = None
    if bool(elastic.any()):
        displacement = _elastic_displacement(elastic, spatial_shape, config, generator)
    return SpatialParams(matrix=matrix, displacement=displacement)


def apply_spatial(batch: dict, params: SpatialParams, image_padding: Literal["minimum", "zero"] = "minimum") -> dict:
    """Apply per-sample spatial transforms to ``image``, ``label`` and ``region`` of a batch; returns a new dict.

    Mirror-only samples are flipped exactly; the others share one sampling grid per sample, built once: one
    `grid_sample` over all of them for the image (bi/trilinear, padded with the channel minimum or 0), and a
    nearest-neighbour gather on that same grid for label and region (label 0 and region False outside the patch).
    """
    _check_shapes(batch, batched=True)
    image, label, region = batch["image"], batch["label"], batch["region"]
    n = label.dim() - 1
    spatial_shape = tuple(label.shape[1:])
    out_image, out_label, out_region = torch.empty_like(image), torch.empty_like(label), torch.empty_like(region)

    resample = params.needs_resampling()
    for b in torch.nonzero(~resample).flatten().tolist():
        axes = [d for d in range(n) if params.matrix[b, d, d] < 0]
        out_image[b] = image[b].flip([d + 1 for d in axes]) if axes else image[b]
        out_label[b] = label[b].flip(axes) if axes else label[b]
        out_region[b] = region[b].flip(axes) if axes else region[b]

    index = torch.nonzero(resample).flatten()
    if index.numel():
        displacement = None if params.displacement is None else params.displacement[index]
        grid = _sampling_grid(params.matrix[index], displacement, spatial_shape, image.device)
        index = index.to(image.device)
        moving = image.index_select(0, index)
        if image_padding == "minimum":
            # interpolating (image - min) with zero padding equals interpolating the image padded with its minimum
            low = moving.amin(dim=tuple(range(2, n + 2)), keepdim=True)
            moving = moving - low
        warped = F.grid_sample(moving, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if image_padding == "minimum":
            warped += low
        out_image[index] = warped.to(image.dtype)
        moved_label, moved_region = _nearest(grid, label.index_select(0, index), region.index_select(0, index))
        out_label[index] = moved_label
        out_region[index] = moved_region

    out = dict(batch)
    out.update(image=out_image, label=out_label, region=out_region)
    return out


def _sampling_grid(matrix: torch.Tensor, displacement: torch.Tensor | None, spatial_shape: tuple[int, ...],
                   device: torch.device) -> torch.Tensor:
    """The `grid_sample` grid (k, *S, n) (align_corners=False) of voxel-space matrices (k, n, n) plus the coarse
    displacement (k, n, *C) upsampled linearly; built axis by axis from 1D ramps, far cheaper than `affine_grid`."""
    k, n = matrix.shape[0], len(spatial_shape)
    # align_corners=False: a voxel at offset v from the centre of an axis of size s sits at normalised 2 v / s
    half = torch.tensor(spatial_shape, dtype=torch.float64) / 2
    theta = matrix * half.view(1, 1, n) / half.view(1, n, 1)
    ramps = [(torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1 for size in spatial_shape]
    upsampled = None
    if displacement is not None:
        coarse = (displacement.to(torch.float64) / half.view(1, n, *([1] * n))).to(device=device, dtype=torch.float32)
        upsampled = _upsample_linear(coarse, spatial_shape)
    grid = torch.empty(k, *spatial_shape, n, dtype=torch.float32, device=device)
    for axis in range(n):
        # grid_sample orders coordinates last axis first: coordinate n - 1 - axis is our tensor axis `axis`
        coordinate = upsampled[:, axis] if upsampled is not None else None
        for source in range(n):
            shape = [k] + [1] * n
            shape[source + 1] = spatial_shape[source]
            term = (theta[:, axis, source].view(-1, 1) * ramps[source].view(1, -1)).to(device, torch.float32)
            coordinate = term.view(shape) if coordinate is None else coordinate + term.view(shape)
        grid[..., n - 1 - axis] = coordinate
    return grid


def _upsample_linear(coarse: torch.Tensor, spatial_shape: tuple[int, ...]) -> torch.Tensor:
    """(k, n, *C) control values -> (k, n, *S) by separable linear interpolation, corners on corners."""
    out = coarse
    for axis, size in enumerate(spatial_shape):
        weights = _linear_weights(coarse.shape[axis + 2], size).to(device=coarse.device, dtype=coarse.dtype)
        out = torch.movedim(torch.movedim(out, axis + 2, -1) @ weights.T, -1, axis + 2)
    return out


def _linear_weights(control_points: int, size: int) -> torch.Tensor:
    """(size, control_points) matrix of linear interpolation with align_corners=True."""
    position = torch.linspace(0, control_points - 1, size, dtype=torch.float64)
    left = position.floor().clamp(max=control_points - 2).long()
    fraction = position - left
    weights = torch.zeros(size, control_points, dtype=torch.float64)
    weights[torch.arange(size), left] = 1 - fraction
    weights[torch.arange(size), left + 1] = fraction
    return weights


def _nearest(grid: torch.Tensor, label: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and region at the nearest voxel of each grid point; label 0 and region False outside the patch.

    The inputs get a one-voxel border of (0, False) and indices are clamped onto it, so no inside test is needed.
    """
    k, n, spatial_shape = grid.shape[0], grid.shape[-1], tuple(label.shape[1:])
    padded_shape = [size + 2 for size in spatial_shape]
    compute = torch.float32 if math.prod(padded_shape) < 2 ** 24 else torch.float64  # exact integer flat indices
    bottom, top = (int(v) for v in torch.aminmax(label)) if label.numel() else (0, 0)
    small = torch.uint8 if 0 <= bottom and top < 256 else label.dtype  # gathering bytes is cheaper
    label_padded = F.pad(label.to(small), [1, 1] * n)
    region_padded = F.pad(region.view(torch.uint8), [1, 1] * n)
    flat, stride = None, 1
    for axis in reversed(range(n)):
        size = spatial_shape[axis]
        # normalised (align_corners=False) -> voxel index, shifted by the border
        position = grid[..., n - 1 - axis].to(compute).mul(size / 2).add_((size - 1) / 2 + 1)
        position = position.round_().clamp_(0, size + 1)
        if stride != 1:
            position.mul_(stride)
        flat = position if flat is None else flat.add_(position)
        stride *= padded_shape[axis]
    flat = flat.reshape(k, -1).long()
    moved_label = label_padded.reshape(k, -1).gather(1, flat).view(k, *spatial_shape).to(label.dtype)
    moved_region = region_padded.reshape(k, -1).gather(1, flat).view(k, *spatial_shape).bool()
    return moved_label, moved_region


def _rotation_matrices(angles: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n, n) rotations: in-plane by angles[:, 0] for 2D; around axes 0, 1, 2 in turn for 3D (radians)."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    batch = angles.shape[0]
    if n == 2:
        return torch.stack([torch.stack([cos[:, 0], -sin[:, 0]], -1), torch.stack([sin[:, 0], cos[:, 0]], -1)], -2)
    result = torch.eye(3, dtype=angles.dtype).repeat(batch, 1, 1)
    for axis in range(3):
        first, second = [a for a in range(3) if a != axis]
        around = torch.eye(3, dtype=angles.dtype).repeat(batch, 1, 1)
        around[:, first, first] = cos[:, axis]
        around[:, first, second] = -sin[:, axis]
        around[:, second, first] = sin[:, axis]
        around[:, second, second] = cos[:, axis]
        result = result @ around
    return result


def _elastic_displacement(selected: torch.Tensor, spatial_shape: tuple[int, ...], config: AugmentConfig,
                          generator: torch.Generator) -> torch.Tensor:
    """(B, n, *C) coarse random displacement (voxels): a normal field on the control grid, smoothed over about one
    control cell, scaled so its largest component is the sample's drawn maximum; 0 where not `selected`."""
    batch, n = selected.shape[0], len(spatial_shape)
    coarse = [max(2, math.ceil((s - 1) / config.elastic_control_spacing_voxels) + 1) for s in spatial_shape]
    field = torch.randn(batch, n, *coarse, generator=generator, dtype=torch.float64)
    field = _blur(field, torch.ones(batch, n, dtype=torch.float64))
    peak = field.abs().flatten(1).amax(dim=1).clamp_min(1e-12)
    magnitude = _uniform(0.0, config.elastic_max_displacement_voxels, (batch,), generator) * selected
    return field * (magnitude / peak).view(-1, *([1] * (n + 1)))


# ------------------------------------------------------------------------------------------------- intensity
def _intensity_in_place(image: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> None:
    """nnU-Net's order: noise, blur, brightness, contrast, gamma; each on the samples that drew it."""
    batch, channels, n = image.shape[0], image.shape[1], image.dim() - 2
    spatial = tuple(range(2, n + 2))
    view = (-1, channels, *([1] * n))

    def chosen(probability: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator) < probability

    noise = chosen(config.noise_probability)
    noise_sigma = _uniform(0.0, config.noise_max_sigma, (batch,), generator)
    blur = chosen(config.blur_probability)
    blur_sigma = _uniform(*config.blur_sigma_range, (batch, n), generator)
    brightness = chosen(config.brightness_probability)
    brightness_factor = _uniform(*config.brightness_range, (batch, channels), generator)
    contrast = chosen(config.contrast_probability)
    contrast_factor = _two_sided(*config.contrast_range, (batch, channels), generator)
    gamma = chosen(config.gamma_probability)
    gamma_exponent = _two_sided(*config.gamma_range, (batch, channels), generator)

    index = _indices(noise, image.device)
    if index.numel():
        device_generator = _device_generator(generator, image.device)
        sigma = noise_sigma[noise].to(device=image.device, dtype=image.dtype).view(-1, *([1] * (n + 1)))
        shape = (index.numel(), *image.shape[1:])
        image[index] += sigma * torch.randn(shape, generator=device_generator, device=image.device, dtype=image.dtype)

    index = _indices(blur, image.device)
    if index.numel():
        image[index] = _blur(image[index], blur_sigma[blur])

    index = _indices(brightness, image.device)
    if index.numel():
        image[index] *= brightness_factor[brightness].to(device=image.device, dtype=image.dtype).view(view)

    index = _indices(contrast, image.device)
    if index.numel():
        part = image[index]
        mean = part.mean(dim=spatial, keepdim=True)
        low, high = part.amin(dim=spatial, keepdim=True), part.amax(dim=spatial, keepdim=True)
        factor = contrast_factor[contrast].to(device=image.device, dtype=image.dtype).view(view)
        image[index] = torch.minimum(torch.maximum((part - mean) * factor + mean, low), high)

    index = _indices(gamma, image.device)
    if index.numel():
        part = image[index]
        low, high = part.amin(dim=spatial, keepdim=True), part.amax(dim=spatial, keepdim=True)
        extent = (high - low).clamp_min(1e-7)
        exponent = gamma_exponent[gamma].to(device=image.device, dtype=image.dtype).view(view)
        image[index] = ((part - low) / extent).clamp(0, 1).pow(exponent) * extent + low


def _blur(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (k, C, *S) with per-sample, per-axis sigma (k, n) in voxels; edges replicated."""
    k, n = image.shape[0], image.dim() - 2
    radius = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    out = image
    for axis in range(n):
        weights = torch.exp(-0.5 * (taps.view(1, -1) / sigma[:, axis].view(-1, 1)) ** 2)
        weights = (weights / weights.sum(dim=1, keepdim=True)).to(device=image.device, dtype=image.dtype)
        padding = [0] * (2 * n)
        padding[2 * (n - 1 - axis)] = padding[2 * (n - 1 - axis) + 1] = radius  # F.pad counts from the last axis
        padded = F.pad(out, padding, mode="replicate")
        size, dim = out.shape[axis + 2], axis + 2
        shape = (k, *([1] * (n + 1)))
        result = padded.narrow(dim, 0, size) * weights[:, 0].view(shape)
        for tap in range(1, 2 * radius + 1):
            result += padded.narrow(dim, tap, size) * weights[:, tap].view(shape)
        out = result
    return out


# ---------------------------------------------------------------------------------------------------- helpers
def _as_generator(generator: Seed) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator must be a torch.Generator or an integer seed, got {type(generator).__name__}")


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The generator itself when it lives on `device`, else one on `device` seeded from it (still reproducible)."""
    if generator.device == torch.device(device) or (generator.device.type == device.type == "cpu"):
        return generator
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def _two_sided(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform factors, half of them below 1 and half above when (low, high) spans 1 (nnU-Net's rule, so that
    (0.7, 1.5) is not mostly > 1)."""
    below = torch.rand(shape, generator=generator) < 0.5
    fraction = torch.rand(shape, generator=generator, dtype=torch.float64)
    if low < 1.0 < high:
        start = torch.where(below, low, 1.0)
        stop = torch.where(below, 1.0, high)
        return start + (stop - start) * fraction
    return low + (high - low) * fraction


def _indices(mask: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.nonzero(mask).flatten().to(device)


def _check_shapes(batch: dict, batched: bool) -> None:
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
