"""Spatial transforms (flips, rotation, zoom, elastic deformation) as one sampling grid per sample: the image by one
grid_sample, label and region by a nearest-neighbour lookup on the same grid."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from unimos.augment.config import AugmentConfig, Seed, check_shapes
from unimos.augment.intensity import gaussian_blur
from unimos.augment.random_draws import as_generator, uniform


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


def draw_spatial(config: AugmentConfig, batch_size: int, spatial_shape: tuple[int, ...],
                 generator: Seed) -> SpatialParams:
    """Draw flips, rotation, zoom and elastic displacement for each of `batch_size` patches of `spatial_shape`."""
    generator = as_generator(generator)
    n = len(spatial_shape)
    if n not in (2, 3):
        raise ValueError(f"patches must be 2D or 3D, got spatial shape {spatial_shape}")
    flip_axes = range(n) if config.flip_axes is None else config.flip_axes
    allowed = torch.zeros(n, dtype=torch.bool)
    allowed[list(flip_axes)] = True
    flips = (torch.rand(batch_size, n, generator=generator) < config.flip_probability) & allowed

    rotate = torch.rand(batch_size, generator=generator) < config.rotation_probability
    limit = math.radians(config.max_rotation_degrees)
    angles = uniform(-limit, limit, (batch_size, 3), generator)
    if n == 3 and config.rotation_axes is not None:
        keep = torch.zeros(3, dtype=torch.bool)
        keep[list(config.rotation_axes)] = True
        angles = angles * keep
    angles = angles * rotate.unsqueeze(1)

    scale = torch.rand(batch_size, generator=generator) < config.scale_probability
    zoom = torch.where(scale, uniform(*config.scale_range, (batch_size,), generator), 1.0)

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
    check_shapes(batch, batched=True)
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
    field = gaussian_blur(field, torch.ones(batch, n, dtype=torch.float64))
    peak = field.abs().flatten(1).amax(dim=1).clamp_min(1e-12)
    magnitude = uniform(0.0, config.elastic_max_displacement_voxels, (batch,), generator) * selected
    return field * (magnitude / peak).view(-1, *([1] * (n + 1)))
