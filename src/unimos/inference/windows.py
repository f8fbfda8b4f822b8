"""Which windows the network sees: the plan's patch, or ("auto") the fewest, largest windows that fit in memory.

A fully convolutional network predicts any input whose sizes are multiples of its divisor. With the plan's patch
(96^3) and overlap 0.5, a 3 mm abdomen (about 122 x 99 x 112 voxels) takes 8 overlapping windows, about 4.5 times
its own voxels of compute; the whole volume padded to the divisor is one window and about 1.1 times. A larger window
needs more memory (the full-resolution feature maps of the window), so "auto" picks, among tilings that keep the
patch mode's overlap in voxels at every seam, the one with the least compute whose estimated memory fits the budget,
and falls back to the plan's patch when nothing larger fits.

The windows are still run by MONAI's `sliding_window_inference` (Gaussian weighting, per-axis overlap); only their
size and overlap change. A larger window changes what the network computes, not only the borders: on the demo
model and the BTCV model of bench/btcv_partial.py (both trained on 48^3 patches, whole-volume windows 4-11 times
larger), "auto" lowered the mean DSC by 0.03 and 0.06. The cause is the context the deeper levels see beyond a
training patch, not the instance norm's statistics: normalising with patch-scale statistics did not recover it
(bench/README.md, "Faster inference without losing accuracy"). That is why "patch" stays the default; check "auto"
on your own model (bench/inference_agreement.py) before using it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from itertools import product
from typing import Any

import torch
from torch import nn

from unimos.errors import UnimosError
from unimos.inference.memory import current_rss_mib

WINDOW_MODES = ("patch", "auto")
# The budget "auto" fits its windows into when the user gives none: the reliability issue's peak-memory goal.
DEFAULT_AUTO_BUDGET_GIB = 3.0
# Full-resolution feature maps alive at once per window voxel, in units of the network's first-level width (F0).
# Measured on MONAI DynUNet (CPU, no_grad, F0 16 and 32, windows 64^3 to 128x112x112): 6.6 F0 plus the logits at the
# peak (the decoder block's concatenated input (2 F0), its skip (F0), convolution and normalisation outputs, oneDNN's
# reordered copies); 7 F0, with MONAI's own tensors counted on top, leaves a margin of about 10%.
FEATURE_MAPS_PER_WIDTH = 7
FLOAT_BYTES = 4
# Share of the memory the system reports available that "auto" may plan to use (the rest is left to other programs).
AVAILABLE_SHARE = 0.8


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one prediction.

    Attributes:
        mode: "patch" (the plan's patch) or "auto" (chosen for the memory budget).
        size: window size per spatial axis, in voxels of the plan's grid.
        overlap: per-axis overlap fraction, as MONAI's `sliding_window_inference` takes it.
        count: windows evaluated (per mirror pass).
        batch: windows per network call (MONAI's sw_batch_size).
        estimated_bytes: estimated memory of the network pass and MONAI's buffers for this plan.
        fits: whether `estimated_bytes` is within the memory that was available; a patch fallback may not fit.
        image_shape: the image the windows cover (spatial, on the plan's grid, before any padding).
    """

    mode: str
    size: tuple[int, ...]
    overlap: tuple[float, ...]
    count: int
    batch: int
    estimated_bytes: int
    fits: bool = True
    image_shape: tuple[int, ...] = ()

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record for predict_log.json."""
        record = asdict(self)
        record["size"], record["overlap"] = list(self.size), [round(o, 4) for o in self.overlap]
        record["image_shape"] = list(self.image_shape)
        record["estimated_gib"] = round(self.estimated_bytes / 2**30, 3)
        del record["estimated_bytes"]
        return record


def check_window_mode(mode: str) -> str:
    """The mode, or a UnimosError naming the known ones."""
    if mode not in WINDOW_MODES:
        raise UnimosError("--window", f"'{mode}' is not a window mode", f"use one of {list(WINDOW_MODES)}")
    return mode


def full_resolution_width(network: nn.Module) -> int:
    """Channels of the network's first convolution: the width of its full-resolution feature maps (F0)."""
    for module in network.modules():
        if isinstance(module, (nn.Conv3d, nn.Conv2d, nn.ConvTranspose3d)):
            return int(module.out_channels)
    raise ValueError(f"{type(network).__name__} has no convolution to read its feature width from")


def bytes_per_window_voxel(width: int, n_classes: int, in_channels: int, batch: int = 1) -> int:
    """Estimated memory per voxel of a window: the network's feature maps plus MONAI's per-window tensors.

    Args:
        width: the network's full-resolution feature channels (F0).
        n_classes: output channels, background included.
        in_channels: image channels.
        batch: windows per network call.
    MONAI holds per window its input crop, the logits, the Gaussian-weighted logits and the importance map.
    """
    network = FEATURE_MAPS_PER_WIDTH * width + n_classes
    monai = in_channels + 2 * n_classes + 1
    return FLOAT_BYTES * batch * (network + monai)


def image_buffer_bytes(image_shape: Sequence[int], n_classes: int) -> int:
    """MONAI's whole-image buffers (weighted sum of logits, count map) plus the softmax taken afterwards."""
    return FLOAT_BYTES * (2 * n_classes + 1) * math.prod(int(n) for n in image_shape)


def windows_along(length: int, window: int, overlap: float) -> int:
    """How many windows MONAI's sliding window places along an axis of `length` voxels (its own formula)."""
    if window >= length:
        return 1
    interval = max(int(window * (1 - overlap)), 1)
    return math.ceil((length - window) / interval) + 1


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _axis_candidates(length: int, patch: int, divisor: int, overlap: float) -> list[tuple[int, float, int]]:
    """(window, overlap fraction, count) per number of windows along one axis, from one window to the patch's count.

    Each candidate keeps the patch mode's overlap in voxels (overlap * patch) between neighbouring windows, so every
    seam has the context patch windows give it; the overlap fraction is set half a voxel short of it so that MONAI's
    `int(window * (1 - overlap))` lands exactly on `window - margin`.
    """
    margin = math.ceil(overlap * patch)
    smallest = min(patch, _round_up(length, divisor))  # no window below the patch, unless the axis itself is shorter
    most = windows_along(length, patch, overlap)
    candidates = {}
    for pieces in range(1, most + 1):
        window = max(_round_up(math.ceil((length + (pieces - 1) * margin) / pieces), divisor), smallest)
        fraction = 0.0 if window >= length else max(margin - 0.5, 0.0) / window
        candidates[window] = (window, fraction, windows_along(length, window, fraction))
    return sorted(candidates.values(), reverse=True)


def patch_windows(image_shape: Sequence[int], patch: Sequence[int], overlap: float, per_voxel_bytes: int,
                  fixed_bytes: int = 0, batch: int = 2) -> WindowPlan:
    """The plan's patch with the given overlap (the default behaviour), described as a WindowPlan."""
    count = math.prod(windows_along(int(n), int(p), overlap) for n, p in zip(image_shape, patch))
    batch_used = min(batch, count)
    estimate = batch_used * per_voxel_bytes * math.prod(int(p) for p in patch) + fixed_bytes
    return WindowPlan("patch", tuple(int(p) for p in patch), (float(overlap),) * len(patch), count, batch_used,
                      estimate, image_shape=tuple(int(n) for n in image_shape))


def choose_windows(image_shape: Sequence[int], patch: Sequence[int], divisor: Sequence[int], overlap: float,
                   available_bytes: float, per_voxel_bytes: int, fixed_bytes: int = 0) -> WindowPlan:
    """The tiling with the least compute whose estimated memory fits `available_bytes`; the patch when none does.

    Args:
        image_shape: the (cropped) image on the plan's grid, voxels per spatial axis.
        patch: the plan's patch; no window is smaller (unless the whole axis is), none needs more windows.
        divisor: what every window size must be a multiple of (the network's downsampling).
        overlap: the patch mode's overlap fraction; auto keeps the same overlap in voxels.
        available_bytes: memory the windows may use (after the process's own and MONAI's image buffers).
        per_voxel_bytes: estimated bytes per window voxel (`bytes_per_window_voxel`).
        fixed_bytes: memory the plan needs whatever the windows (`image_buffer_bytes`), only reported.
    Compute is counted as windows x window voxels; ties go to fewer windows.
    """
    axes = [_axis_candidates(int(n), int(p), int(d), overlap) for n, p, d in zip(image_shape, patch, divisor)]
    best: tuple[tuple[int, int], WindowPlan] | None = None
    for combo in product(*axes):
        voxels = math.prod(window for window, _, _ in combo)
        needed = per_voxel_bytes * voxels
        if needed > available_bytes:
            continue
        count = math.prod(n for _, _, n in combo)
        key = (count * voxels, count)
        if best is None or key < best[0]:
            plan = WindowPlan("auto", tuple(w for w, _, _ in combo), tuple(f for _, f, _ in combo), count, 1,
                              needed + fixed_bytes, image_shape=tuple(int(n) for n in image_shape))
            best = (key, plan)
    if best is None:
        fallback = patch_windows(image_shape, patch, overlap, per_voxel_bytes, fixed_bytes, batch=1)
        return replace(fallback, fits=fallback.estimated_bytes - fixed_bytes <= available_bytes)
    return best[1]


def _system_available_bytes() -> float | None:
    """MemAvailable from /proc/meminfo (Linux), or None where the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024.0
    except OSError:
        return None
    return None


def available_window_bytes(budget_gib: float | None, device: torch.device) -> float:
    """Memory the windows may use: the budget (default DEFAULT_AUTO_BUDGET_GIB) less what the process holds, and no
    more than AVAILABLE_SHARE of what the system (or the GPU) has free."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return AVAILABLE_SHARE * free
    budget = (budget_gib if budget_gib is not None else DEFAULT_AUTO_BUDGET_GIB) * 2**30
    room = budget - current_rss_mib() * 2**20
    system = _system_available_bytes()
    return min(room, AVAILABLE_SHARE * system) if system is not None else room


def plan_windows(mode: str, network: nn.Module, image_shape: Sequence[int], patch: Sequence[int], overlap: float,
                 n_classes: int, in_channels: int, budget_gib: float | None, device: torch.device,
                 batch: int = 2) -> WindowPlan:
    """The WindowPlan for one prepared image: the patch, or with mode "auto" the largest windows that fit.

    A 2D network (which sees axial slices) always uses its patch.
    """
    check_window_mode(mode)
    width = full_resolution_width(network)
    fixed = image_buffer_bytes(image_shape, n_classes)
    spatial_dims = int(getattr(network, "spatial_dims", len(patch)))
    if mode == "patch" or spatial_dims != len(image_shape):
        return patch_windows(image_shape, patch, overlap, bytes_per_window_voxel(width, n_classes, in_channels),
                             fixed, batch=batch)
    divisor = getattr(network, "required_divisor", lambda: (1,) * len(patch))()
    available = available_window_bytes(budget_gib, device) - fixed
    return choose_windows(image_shape, patch, divisor, overlap, available,
                          bytes_per_window_voxel(width, n_classes, in_channels), fixed)

