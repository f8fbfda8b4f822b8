"""Exclusion loss: a voxel known to be one organ is a negative for every class outside its candidate set.

Shi et al., "Marginal loss and exclusion loss for partially supervised multi-organ segmentation", MedIA 70,
2021 (paper 002, ref. [35]). For each sample b and class c, the exclusion mask E_bc holds the annotated-region
voxels labeled with an organ (label != 0) whose candidate set excludes c (a liver voxel excludes spleen and
background, but not an unannotated liver_tumor). The loss is the soft Dice overlap between E_bc and p_c,
    2 sum_i e_ic p_ic / (sum_i e_ic + sum_i p_ic + eps),   sums over the sample's annotated region,
averaged over the (b, c) pairs with a non-empty E_bc; 0 means no probability is put on excluded classes.
"""

from __future__ import annotations

import torch

from unimos.losses.base import TargetsLoss, zero_with_graph
from unimos.losses.registry import register_loss
from unimos.losses.targets import Targets

EXCLUSION_SMOOTH = 1.0


def exclusion_mask(targets: Targets) -> torch.Tensor:
    """(B, C, *spatial) bool: voxels known to be an organ whose candidate set does not contain class c."""
    known_organ = targets.region & (targets.labels != 0)
    return known_organ.unsqueeze(1) & ~targets.candidates()


def exclusion_loss(logits: torch.Tensor, targets: Targets, *, smooth: float = EXCLUSION_SMOOTH) -> torch.Tensor:
    """Mean Dice overlap between each class's probability and its exclusion mask (Shi et al. 2021), region only."""
    excluded = exclusion_mask(targets).to(logits.dtype)
    if not bool(excluded.any()):
        return zero_with_graph(logits)
    probs = torch.softmax(logits, dim=1) * targets.region.unsqueeze(1).to(logits.dtype)
    overlap = (excluded * probs).flatten(2).sum(dim=2)  # (B, C)
    excluded_count = excluded.flatten(2).sum(dim=2)
    prob_sum = probs.flatten(2).sum(dim=2)
    dice = 2 * overlap / (excluded_count + prob_sum + smooth)
    return dice[excluded_count > 0].mean()


@register_loss("exclusion")
class Exclusion(TargetsLoss):
    """Dice overlap between p_c and the voxels known to be an organ other than c (Shi et al. 2021, exclusion loss)."""

    def __init__(self, smooth: float = EXCLUSION_SMOOTH) -> None:
        super().__init__()
        self.smooth = float(smooth)

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return exclusion_loss(logits, targets, smooth=self.smooth)
