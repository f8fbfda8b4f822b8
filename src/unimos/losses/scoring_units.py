"""Which voxels of a sample a Dice is computed over: the whole volume, or each annotated slice on its own.

Paper 002, sec. 3.3: the ambiguity-aware losses are computed slice by slice for sparse labels (each annotated
slice has its own annotated structures) and per volume for partial labels. Read from the annotated region alone:
  - region all True: one unit, the whole sample (per volume);
  - otherwise the sample is cut into slices along `slice_axis` (given) or, when None, along the first spatial axis
    whose every slice is either fully annotated or not at all (the region is a stack of annotated slices);
    each fully annotated slice is one unit, and any region voxels on no such slice form one more unit;
  - no such axis (e.g. 'ignore' voxels scattered in a volume): one unit, the region voxels of the sample.
"""

from __future__ import annotations

import torch


def other_dims(ndim: int, axis: int) -> tuple[int, ...]:
    """The spatial dimensions other than `axis`."""
    return tuple(d for d in range(ndim) if d != axis)


def slicing_axis(region: torch.Tensor, slice_axis: int | None = None) -> int | None:
    """Spatial axis along which a (*spatial) region is scored slice by slice, or None to score it as one unit."""
    if bool(region.all()):
        return None  # paper 002: partial (and full) labels are scored per volume
    if slice_axis is not None:
        if not -region.ndim <= slice_axis < region.ndim:
            raise ValueError(f"slice_axis {slice_axis} is not a spatial axis of a {region.ndim}D sample")
        return slice_axis % region.ndim
    for axis in range(region.ndim):
        dims = other_dims(region.ndim, axis)
        if torch.equal(region.all(dim=dims), region.any(dim=dims)):
            return axis
    return None


def sum_per_unit(values: torch.Tensor, region: torch.Tensor, axis: int | None) -> torch.Tensor:
    """(K, U) sums over each scoring unit of (K, *spatial) values that are already zero off the scored voxels."""
    if axis is None:
        return values.flatten(1).sum(dim=1, keepdim=True)
    dims = other_dims(region.ndim, axis)
    annotated_slices = region.all(dim=dims)  # (S_axis,)
    per_slice = values.sum(dim=tuple(1 + d for d in dims))  # (K, S_axis)
    sums = [per_slice[:, annotated_slices]]
    shape = [1] * region.ndim
    shape[axis] = -1
    leftover = region & ~annotated_slices.view(shape)
    if bool(leftover.any()):
        sums.append((values * leftover).flatten(1).sum(dim=1, keepdim=True))
    return torch.cat(sums, dim=1)
