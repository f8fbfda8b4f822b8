"""UniMOS's slice geometry for 2D networks (paper 000, section IV.A): every axial slice resized to a fixed square
(256 x 256) before the network sees it; training crops a patch from it (224), inference resizes the output back.

Images and probabilities are resized bilinearly, labels and masks with nearest-exact, which samples at the same
pixel centres (align_corners=False), so a resized image and its resized label stay aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def resize_slices(x: torch.Tensor, size: Sequence[int], labels: bool = False) -> torch.Tensor:
    """(N, C, X, Y) slices resized to (N, C, *size): bilinear, or nearest-exact with `labels` (any dtype kept)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if labels:
        return F.interpolate(x.float(), size=tuple(size), mode="nearest-exact").to(x.dtype)
    return F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False).to(x.dtype)


def resized_position(position: Sequence[int], shape: Sequence[int], size: Sequence[int]) -> list[int]:
    """The pixel of a resized slice whose centre is nearest to `position`'s centre in the original slice."""
    return [min(int(s) - 1, max(0, int(np.floor((p + 0.5) * s / n)))) for p, n, s in zip(position, shape, size)]


def default_slice_patch(slice_resize: int) -> int:
    """UniMOS's crop for a resize: 224 of 256, i.e. seven eighths of the side."""
    return slice_resize - slice_resize // 8
