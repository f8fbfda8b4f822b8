"""Reorientation to RAS and per-axis resampling that keeps every array's geometry (and sparse slices) exact.

After reorientation the grid axes are the world axes (up to any obliqueness of the scan), so resampling is
separable: target index t on an axis of n -> n' voxels sits at source index (t + 0.5) * n / n' - 0.5, the
convention of torch's `interpolate(..., align_corners=False)`; the field of view is preserved exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from unimos.data.volume import Volume


def orientation_to_ras(affine: np.ndarray) -> np.ndarray:
    """nibabel orientation array (axis, flip) taking this affine's voxel axes to the closest RAS axes."""
    return nib.orientations.io_orientation(affine)


def reorient(volume: Volume, ornt: np.ndarray) -> Volume:
    """Apply an orientation transform (permute/flip only, no interpolation) to voxels and affine together."""
    array = nib.orientations.apply_orientation(volume.array, ornt)
    inverse = nib.orientations.inv_ornt_aff(ornt, volume.shape)
    # copy in the source's own layout: a sequential copy, where a change of layout would be a 3D transpose
    fortran = volume.array.flags.f_contiguous and not volume.array.flags.c_contiguous
    array = np.asfortranarray(array) if fortran else np.ascontiguousarray(array)
    return Volume(array, volume.affine @ inverse, volume.path)


def reorient_slices(slices: dict[int, tuple[int, ...]], ornt: np.ndarray,
                    shape: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """Where annotated slice indices land after the same reorientation."""
    out: dict[int, tuple[int, ...]] = {}
    for axis, indices in slices.items():
        new_axis, flip = int(ornt[axis, 0]), int(ornt[axis, 1])
        n = int(shape[axis])
        out[new_axis] = tuple(sorted((n - 1 - i) if flip < 0 else i for i in indices))
    return out


def target_shape(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> tuple[int, ...]:
    """Grid size after resampling to `target_spacing` (mm): the field of view is kept, rounded to whole voxels."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing))


def resampled_affine(affine: np.ndarray, shape: Sequence[int], new_shape: Sequence[int]) -> np.ndarray:
    """Affine of the resampled grid (same field of view, voxel centres moved as in align_corners=False)."""
    scale = np.array([n / m for n, m in zip(shape, new_shape)], dtype=np.float64)
    to_source = np.eye(4)
    to_source[:3, :3] = np.diag(scale)
    to_source[:3, 3] = 0.5 * scale - 0.5
    return affine @ to_source


def source_index(n_source: int, n_target: int) -> np.ndarray:
    """For each target index along one axis, the nearest source index."""
    t = np.arange(n_target, dtype=np.float64)
    return np.clip(np.rint((t + 0.5) * n_source / n_target - 0.5), 0, n_source - 1).astype(np.int64)


def nearest_target_index(s: int, n_source: int, n_target: int) -> int:
    """The target index whose voxel centre is nearest to source index `s` along one axis."""
    return int(np.clip(np.rint((s + 0.5) * n_target / n_source - 0.5), 0, n_target - 1))


def resample_image(volume: Volume, new_shape: Sequence[int]) -> Volume:
    """Trilinear resampling of an image onto `new_shape` (float32)."""
    new_shape = tuple(int(n) for n in new_shape)
    if new_shape == volume.shape:
        return Volume(volume.array.astype(np.float32, copy=False), volume.affine, volume.path)
    array = volume.array
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        # Fortran order (NIfTI): trilinear interpolation is separable, so interpolating the transposed C-order
        # view onto the reversed shape and transposing the (smaller) result back avoids a 3D transpose copy.
        tensor = torch.from_numpy(array.T.astype(np.float32, copy=False))[None, None]
        out = F.interpolate(tensor, size=new_shape[::-1], mode="trilinear", align_corners=False)[0, 0].numpy()
        out = np.ascontiguousarray(out.T)
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
        out = F.interpolate(tensor, size=new_shape, mode="trilinear", align_corners=False)[0, 0].numpy()
    return Volume(out, resampled_affine(volume.affine, volume.shape, new_shape), volume.path)


def resample_nearest(volume: Volume, new_shape: Sequence[int],
                     forced: dict[int, dict[int, int]] | None = None) -> Volume:
    """Nearest-neighbour resampling (labels, masks); exact, by index arrays.

    `forced` maps axis -> {target index: source index} to pin chosen target slices to chosen source slices
    (an annotated sparse slice must be read from itself, not from an unannotated neighbour).
    """
    new_shape = tuple(int(n) for n in new_shape)
    index = [source_index(n, m) for n, m in zip(volume.shape, new_shape)]
    for axis, pins in (forced or {}).items():
        for t, s in pins.items():
            index[axis][t] = s
    out = volume.array[np.ix_(*index)]
    return Volume(np.ascontiguousarray(out), resampled_affine(volume.affine, volume.shape, new_shape), volume.path)


def map_annotated_slices(slices: dict[int, tuple[int, ...]], shape: Sequence[int],
                         new_shape: Sequence[int]) -> dict[int, dict[int, int]]:
    """Axis -> {target slice: source slice}: each annotated slice maps to its nearest target slice only.

    When two annotated slices compete for one target slice (downsampling), the nearer one wins.
    """
    out: dict[int, dict[int, int]] = {}
    for axis, indices in slices.items():
        n, m = int(shape[axis]), int(new_shape[axis])
        pins: dict[int, tuple[float, int]] = {}
        for s in indices:
            t = nearest_target_index(s, n, m)
            distance = abs((t + 0.5) * n / m - 0.5 - s)
            if t not in pins or distance < pins[t][0]:
                pins[t] = (distance, s)
        out[axis] = {t: s for t, (_, s) in sorted(pins.items())}
    return out


def resample_label_linear(volume: Volume, new_shape: Sequence[int]) -> Volume:
    """Labels resampled per class (trilinear on each class's mask) then argmax: smoother than nearest.

    Classes are done one at a time, keeping the running best, so memory stays at two float volumes.
    """
    new_shape = tuple(int(n) for n in new_shape)
    best = np.full(new_shape, -1.0, dtype=np.float32)
    out = np.zeros(new_shape, dtype=volume.array.dtype)
    for value in np.unique(volume.array):
        mask = Volume((volume.array == value).astype(np.float32), volume.affine)
        score = resample_image(mask, new_shape).array
        better = score > best
        out[better] = value
        best[better] = score[better]
    return Volume(out, resampled_affine(volume.affine, volume.shape, new_shape), volume.path)
