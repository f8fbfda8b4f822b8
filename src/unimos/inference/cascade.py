"""Coarse-to-fine cascade (paper 001, 2.2): a low-resolution model finds the organs' region, the fine model runs
only inside it.

The coarse model (a `coarse` plan: 6 mm, small network) segments the whole scan; the bounding box of everything
it labels, grown by a margin in mm, is cut from the input (on the input's own grid, so no resampling is added) and
the fine model predicts that box alone; outside it the label map is background. The fine model can be trained on
the same region (`TrainConfig.roi_margin_mm`). Where the coarse model finds nothing, the fine model sees the whole
scan, so a miss of the first stage costs time, never organs. With per-image normalisation (MR) the fine stage
normalises over the box instead of the scan.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unimos.data.labels import foreground_box
from unimos.data.volume import Volume
from unimos.errors import UnimosError

DEFAULT_MARGIN_MM = 20.0

Box = tuple[tuple[int, ...], tuple[int, ...]]


def roi_box(labels: Volume, margin_mm: float) -> Box | None:
    """Voxel box (low, high exclusive) of the labeled voxels grown by `margin_mm` on each side; None if empty."""
    margin = [math.ceil(margin_mm / s) for s in labels.spacing_mm]
    return foreground_box(labels.array, margin)


def crop_volume(volume: Volume, box: Box) -> Volume:
    """The voxels inside `box`, with the affine moved so that every voxel keeps its world position."""
    low, high = box
    array = np.ascontiguousarray(volume.array[tuple(slice(lo, hi) for lo, hi in zip(low, high))])
    return Volume(array, crop_affine(volume.affine, low), volume.path)


def crop_affine(affine: Any, low: Sequence[int]) -> np.ndarray:
    """The affine of a crop starting at voxel `low`: every voxel keeps its world position."""
    matrix = np.asarray(affine, dtype=np.float64).copy()
    matrix[:3, 3] = matrix[:3, :3] @ np.asarray(low, dtype=np.float64) + matrix[:3, 3]
    return matrix


def paste(inner: Volume, box: Box, full: Volume) -> Volume:
    """`inner` (a label map on the box) written into a background label map on `full`'s grid."""
    out = np.zeros(full.shape, dtype=inner.array.dtype)
    out[tuple(slice(lo, hi) for lo, hi in zip(*box))] = inner.array
    return Volume(out, full.affine, full.path)


def check_cascade_pair(coarse: Any, fine: Any) -> None:
    """The two stages must speak about the same organs and read the same channels."""
    if list(coarse.class_names) != list(fine.class_names):
        raise UnimosError("--coarse", f"the coarse model segments {coarse.class_names}, the fine model "
                          f"{fine.class_names}", "train both stages on the same manifest (same taxonomy)")
    if int(coarse.meta["in_channels"]) != int(fine.meta["in_channels"]):
        raise UnimosError("--coarse", "the coarse and the fine model read a different number of channels",
                          "train both stages on the same manifest")
    if int(getattr(fine.network, "slice_resize", 0)):
        raise UnimosError("--coarse", "the fine model resizes whole slices (--slice-resize); inside the coarse "
                          "region its slices would be magnified unlike in training",
                          "use a fine model trained without --slice-resize, or predict without --coarse")


def predict_cascade(predict_volume: Callable[..., Volume], coarse: Any, fine: Any, channels: Sequence[Volume],
                    options: Any, stages: dict[str, float], window: dict[str, Any] | None = None,
                    margin_mm: float = DEFAULT_MARGIN_MM) -> tuple[Volume, dict[str, Any]]:
    """Label map on the input's grid: coarse model on the whole scan, fine model inside the region it found.

    `predict_volume(model, channels, options[, stages, window])` is the predictor's one-volume prediction (passed in,
    so that the predictor, which calls the cascade, is not imported by it). `stages` gets `coarse` (the whole first
    stage) and the fine stage's own steps; the returned dict says where the region was and which share of the scan's
    voxels the fine model saw."""
    clock = time.perf_counter()
    found = predict_volume(coarse, list(channels), options)
    box = roi_box(found, margin_mm)
    stages["coarse"] = time.perf_counter() - clock
    full = channels[0]
    if box is None:
        box = ((0, 0, 0), full.shape)
    cropped = [crop_volume(c, box) for c in channels]
    fine_labels = predict_volume(fine, cropped, options, stages, window)
    share = float(np.prod([hi - lo for lo, hi in zip(*box)]) / np.prod(full.shape))
    return paste(fine_labels, box, full), {"roi_low": list(box[0]), "roi_high": list(box[1]), "roi_share": share,
                                           "margin_mm": margin_mm}
