"""Validation Dice during training, on cached validation cases, in the plan's grid (cheap; not the final score)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from unimos.inference.sliding import predict_probabilities
from unimos.preprocess.cache import CachedCase


def dice_per_class(prediction: np.ndarray, label: np.ndarray, region: np.ndarray,
                   classes: Sequence[int]) -> dict[int, float]:
    """Dice of each annotated class inside the annotated region (NaN when absent from both)."""
    scores = {}
    for cls in classes:
        pred = (prediction == cls) & region
        ref = (label == cls) & region
        denominator = pred.sum() + ref.sum()
        scores[cls] = float(2 * (pred & ref).sum() / denominator) if denominator else float("nan")
    return scores


def validation_dice(network: nn.Module, cases: Sequence[CachedCase], patch_size: Sequence[int],
                    device: torch.device, precision: torch.dtype | None = None,
                    overlap: float = 0.25) -> dict[int, float]:
    """Mean Dice per class over cases annotating it; `precision` is the training's autocast dtype (None: float32)."""
    collected: dict[int, list[float]] = {}
    for case in cases:
        label = case.label()
        if label is None:
            continue
        image = torch.from_numpy(np.array(case.image(), dtype=np.float32))[None].to(device)
        probs = predict_probabilities(network, image, patch_size, overlap=overlap, precision=precision)
        prediction = probs.argmax(1)[0].cpu().numpy()
        scores = dice_per_class(prediction, np.asarray(label), np.asarray(case.region()),
                                case.meta["annotated_classes"])
        for cls, value in scores.items():
            if not np.isnan(value):
                collected.setdefault(cls, []).append(value)
    network.train()
    return {cls: float(np.mean(v)) for cls, v in sorted(collected.items())}
