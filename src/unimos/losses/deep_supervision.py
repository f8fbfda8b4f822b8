"""Deep supervision: one loss over a list of outputs at decreasing resolution, targets downsampled to each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from unimos.losses.targets import Targets

SingleScaleLoss = Callable[[torch.Tensor, Targets], torch.Tensor]


def deep_supervision_weights(levels: int) -> list[float]:
    """Weights 1, 1/2, 1/4, ... normalised to sum 1, full resolution first (as nnU-Net, without zeroing the last)."""
    raw = [0.5**level for level in range(levels)]
    return [w / sum(raw) for w in raw]


def downsample_targets(targets: Targets, spatial_shape: Sequence[int]) -> Targets:
    """Targets resized to `spatial_shape` with nearest-neighbour labels and region; candidate tables unchanged."""
    shape = tuple(int(s) for s in spatial_shape)
    if tuple(targets.labels.shape[1:]) == shape:
        return targets
    # float32 holds label indices exactly (< 2**24); nearest keeps them integers
    labels = F.interpolate(targets.labels.unsqueeze(1).float(), size=shape, mode="nearest")
    region = F.interpolate(targets.region.unsqueeze(1).float(), size=shape, mode="nearest")
    return replace(targets, labels=labels.squeeze(1).long(), region=region.squeeze(1) > 0.5)


def checked_targets(logits: torch.Tensor, targets: Targets) -> Targets:
    """Targets with int64 labels and bool region, after checking that their shapes match (B, C, *spatial) logits."""
    if logits.ndim not in (4, 5):
        raise ValueError(f"logits must be (B, C, H, W) or (B, C, D, H, W), got shape {tuple(logits.shape)}")
    batch, classes, *spatial = logits.shape
    if tuple(targets.labels.shape) != (batch, *spatial) or tuple(targets.region.shape) != (batch, *spatial):
        raise ValueError(f"labels {tuple(targets.labels.shape)} and region {tuple(targets.region.shape)} must be "
                         f"(B, *spatial) = {(batch, *spatial)} to match logits {tuple(logits.shape)}")
    if tuple(targets.tables.shape) != (batch, classes, classes):
        raise ValueError(f"tables {tuple(targets.tables.shape)} must be (B, C, C) = {(batch, classes, classes)}")
    if targets.labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor (int64), got {targets.labels.dtype}")
    return replace(targets, labels=targets.labels.long(), region=targets.region.bool(), tables=targets.tables.bool())


def full_precision(loss: SingleScaleLoss, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
    """`loss` on float32 logits with autocast off, so float16/bfloat16 training cannot overflow sums or log terms."""
    targets = checked_targets(logits, targets)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return loss(logits.float(), targets)


def deep_supervised(loss: SingleScaleLoss, logits: torch.Tensor | Sequence[torch.Tensor],
                    targets: Targets) -> torch.Tensor:
    """`loss` on one output, or the weighted sum over a deep-supervision list (full resolution first)."""
    if isinstance(logits, torch.Tensor):
        return full_precision(loss, logits, targets)
    if len(logits) == 0:
        raise ValueError("deep supervision needs at least one output, got an empty list")
    total = logits[0].new_zeros((), dtype=torch.float32)
    for weight, level in zip(deep_supervision_weights(len(logits)), logits):
        total = total + weight * full_precision(loss, level, downsample_targets(targets, level.shape[2:]))
    return total
