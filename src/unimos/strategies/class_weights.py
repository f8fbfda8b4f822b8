"""Class weights for pseudo-label losses from how well each class is learned (DistDW), so that pseudo-labels of an
early network, which call small late-learned organs background, do not teach the other network to suppress them.

The knowledge-transfer weights of paper 003's released KT-CPS code (after DHC, Wang & Li, MICCAI 2023): count, on
the labeled batch, the voxels of each class the network predicts right (every other voxel counts as background);
w_c = C log(n_max / n_c) / max_k log(n_max / n_k); follow them with an exponential moving average (momentum 0.99).
Background, the class predicted right most often, gets weight 0; a class not yet predicted right anywhere gets C.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unimos.losses.targets import Targets

EPS = 1e-8  # the released code's: a class counted 0 times gets the largest weight instead of a division by zero


def distribution_weights(counts: torch.Tensor) -> torch.Tensor:
    """(C,) w_c = C log(n_max / n_c) / max_k log(n_max / n_k) from (C,) voxel counts; all ones when counts are equal."""
    counts = counts.double()
    logs = torch.log((counts.max() + EPS) / (counts + EPS))
    top = logs.max()
    if float(top) <= 0.0:
        return torch.ones_like(counts, dtype=torch.float32)
    return (counts.numel() * logs / top).float()


def known_class_map(targets: Targets) -> torch.Tensor:
    """(B, *S) the class of each voxel whose candidate set is a single class, -1 where the class is not known."""
    candidates = targets.candidates()
    single = candidates.sum(dim=1) == 1
    return torch.where(single, candidates.int().argmax(dim=1), torch.full_like(targets.labels, -1))


def label_counts(known: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C,) voxels of each known class; unknown voxels (-1) count as background, as the released code's histogram."""
    return torch.bincount(known.clamp(min=0).flatten(), minlength=num_classes)[:num_classes]


def correct_counts(logits: torch.Tensor, targets: Targets) -> torch.Tensor:
    """(C,) voxels of each organ class predicted right on a labeled batch; every other voxel counts as background."""
    known = known_class_map(targets)
    predicted = logits.detach().argmax(dim=1)
    right = torch.where(predicted == known, known, torch.zeros_like(known))
    return label_counts(right, logits.shape[1])


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_i w_{y_i} CE_i / sum_i w_{y_i} (PyTorch's weighted mean); 0 when every label has weight 0."""
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    voxel_weight = weights.to(ce.device, ce.dtype)[labels]
    return (voxel_weight * ce).sum() / voxel_weight.sum().clamp(min=EPS)


class LearnedClassWeights:
    """DistDW state of one network: starts from the first labeled batch's class frequencies (the released code
    starts from the labeled set's), then follows the right-predicted counts with an EMA."""

    def __init__(self, momentum: float = 0.99) -> None:
        self.momentum = float(momentum)
        self.weights: torch.Tensor | None = None

    def update(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        """Fold one labeled batch's right-predicted counts in; returns the (C,) weights to use now."""
        if self.weights is None:
            self.weights = distribution_weights(label_counts(known_class_map(targets), logits.shape[1]))
        current = distribution_weights(correct_counts(logits, targets))
        self.weights = self.momentum * self.weights.to(current.device) + (1.0 - self.momentum) * current
        return self.weights

    def state(self) -> torch.Tensor | None:
        return None if self.weights is None else self.weights.detach().cpu().clone()

    def load(self, weights: torch.Tensor) -> None:
        self.weights = weights.detach().clone().float()
