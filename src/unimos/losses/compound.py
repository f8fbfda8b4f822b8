"""The losses the trainer builds by method name: a supervised part plus optional entropy and exclusion terms."""

from __future__ import annotations

import torch

from unimos.losses.base import TargetsLoss
from unimos.losses.cross_entropy import partial_cross_entropy
from unimos.losses.dice import DICE_SMOOTH, merged_dice_loss
from unimos.losses.entropy import weighted_entropy
from unimos.losses.exclusion import exclusion_loss
from unimos.losses.registry import register_loss
from unimos.losses.targets import Targets


class CompoundLoss(TargetsLoss):
    """supervised(logits, reading(targets)) + entropy_weight * entropy + exclusion_weight * exclusion.

    Args:
        entropy_weight: weight of paper 002's entropy term (eq. 6 uses 1; the term itself weighs patches
            without annotation 3 times).
        exclusion_weight: weight of the exclusion term (Shi et al. 2021).
        smooth: Dice eps (paper 002, eq. 2: 1).
        slice_axis: spatial axis along which sparse samples are scored slice by slice; None finds it.
    """

    def __init__(self, entropy_weight: float = 0.0, exclusion_weight: float = 0.0, smooth: float = DICE_SMOOTH,
                 slice_axis: int | None = None) -> None:
        super().__init__()
        self.entropy_weight = float(entropy_weight)
        self.exclusion_weight = float(exclusion_weight)
        self.smooth = float(smooth)
        self.slice_axis = slice_axis

    def reading(self, targets: Targets) -> Targets:
        """How this method reads the labels (identity: the candidate sets as given)."""
        return targets

    def supervised(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        raise NotImplementedError

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        targets = self.reading(targets)
        loss = self.supervised(logits, targets)
        if self.entropy_weight:
            loss = loss + self.entropy_weight * weighted_entropy(logits, targets)
        if self.exclusion_weight:
            loss = loss + self.exclusion_weight * exclusion_loss(logits, targets)
        return loss

    def dice(self, logits: torch.Tensor, targets: Targets, voxel_mask: torch.Tensor | None = None) -> torch.Tensor:
        return merged_dice_loss(logits, targets, smooth=self.smooth, slice_axis=self.slice_axis,
                                voxel_mask=voxel_mask)


@register_loss("partial")
class PartialLoss(CompoundLoss):
    """partial_ce + merged_dice, equal weights: the target adaptive loss (paper 000) with paper 002's merged Dice."""

    def supervised(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return partial_cross_entropy(logits, targets) + self.dice(logits, targets)


@register_loss("partial_focal_dice")
class PartialFocalDiceLoss(CompoundLoss):
    """partial_focal + merged_dice, equal weights (paper 002, eq. 6 without the entropy term unless weighted)."""

    def __init__(self, gamma: float = 2.0, **kwargs: float | int | None) -> None:
        super().__init__(**kwargs)
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def supervised(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return partial_cross_entropy(logits, targets, gamma=self.gamma) + self.dice(logits, targets)
