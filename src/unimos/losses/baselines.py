"""The baselines partial-label losses are compared with: unannotated = background, or ambiguous voxels ignored."""

from __future__ import annotations

import torch

from unimos.losses.compound import CompoundLoss, PartialFocalDiceLoss
from unimos.losses.cross_entropy import partial_cross_entropy
from unimos.losses.registry import register_loss
from unimos.losses.targets import Targets


def singleton_voxels(targets: Targets) -> torch.Tensor:
    """(B, *spatial) bool: annotated-region voxels whose candidate set is a single class (their label is certain)."""
    set_size = targets.tables.sum(dim=-1)  # (B, C)
    voxel_set_size = torch.gather(set_size, 1, targets.labels.flatten(1)).view_as(targets.labels)
    return targets.region & (voxel_set_size == 1)


@register_loss("naive")
class NaiveLoss(CompoundLoss):
    """CE + Dice reading every unannotated class as background (`targets.naive()`: identity tables, region kept).

    The optional entropy and exclusion terms read the labels the same naive way.
    """

    def reading(self, targets: Targets) -> Targets:
        return targets.naive()

    def supervised(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return partial_cross_entropy(logits, targets) + self.dice(logits, targets)


@register_loss("ignore")
class IgnoreLoss(CompoundLoss):
    """CE + Dice (every class on its own) on singleton-candidate voxels only; ambiguous voxels are ignored."""

    def supervised(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        known = singleton_voxels(targets)
        # on singleton voxels the candidate set is the label itself, so this is plain CE there
        naive = targets.naive()
        return partial_cross_entropy(logits, naive, voxel_mask=known) + self.dice(logits, naive, voxel_mask=known)


@register_loss("naive_focal_dice")
class NaiveFocalDiceLoss(PartialFocalDiceLoss):
    """Focal CE + Dice reading every unannotated class as background: the naive baseline of `partial_focal_dice`."""

    def reading(self, targets: Targets) -> Targets:
        return targets.naive()
