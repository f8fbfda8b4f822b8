"""Cutting fixed-size patches around a centre from memory-mapped cached arrays, padding where they overhang."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def patch_bounds(centre: Sequence[int], patch: Sequence[int],
                 shape: Sequence[int]) -> tuple[list[slice], list[tuple[int, int]]]:
    """Source slices and (before, after) padding so a patch of `patch` voxels is centred on `centre`."""
    source, pads = [], []
    for c, p, n in zip(centre, patch, shape):
        start = int(c) - p // 2
        stop = start + p
        source.append(slice(max(start, 0), min(stop, n)))
        pads.append((max(0, -start), max(0, stop - n)))
    return source, pads


def cut_patch(array: np.ndarray, centre: Sequence[int], patch: Sequence[int], fill: float | int | bool) -> np.ndarray:
    """A patch of `array`'s last len(patch) axes around `centre`; leading axes (channels) are kept whole."""
    lead = array.ndim - len(patch)
    source, pads = patch_bounds(centre, patch, array.shape[lead:])
    block = np.asarray(array[(slice(None),) * lead + tuple(source)])
    if any(a or b for a, b in pads):
        block = np.pad(block, [(0, 0)] * lead + pads, mode="constant", constant_values=fill)
    return block
