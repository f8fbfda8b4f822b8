"""Merged (ambiguity-aware) soft Dice loss, per volume for partial labels and per annotated slice for sparse ones.

Paper 002, eq. 2: L = 1 - 1/|G| sum_{g in G} (2 TP_g + eps) / (2 TP_g + FP_g + FN_g + eps), where the groups G
merge background with every unannotated class (eqs. 3-4; see merged_groups.py), TP/FP/FN are soft counts of the
merged probabilities against the merged one-hot label, and eps = 1. A group absent from a unit scores
eps / (sum p_g + eps), which pushes its probability there to zero (an annotated organ absent from the patch).
"""

from __future__ import annotations

import torch

from unimos.losses.base import TargetsLoss, zero_with_graph
from unimos.losses.merged_groups import merged_groups
from unimos.losses.registry import register_loss
from unimos.losses.scoring_units import slicing_axis, sum_per_unit
from unimos.losses.targets import Targets

DICE_SMOOTH = 1.0  # paper 002, eq. 2: eps = 1


def merged_prediction_and_truth(logits: torch.Tensor,
                                targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, G, *spatial) merged probabilities and one-hot merged labels, and (B, G) which group slots are used."""
    probs = torch.softmax(logits, dim=1)
    groups = merged_groups(targets.tables)
    merged_probs = torch.einsum("bmc,bc...->bm...", groups.members.to(probs.dtype), probs)  # paper 002, eq. 3
    voxel_slot = torch.gather(groups.slot_of_label, 1, targets.labels.flatten(1)).view_as(targets.labels)
    slots = torch.arange(logits.shape[1], device=logits.device).view(1, -1, *([1] * (logits.ndim - 2)))
    merged_truth = (voxel_slot.unsqueeze(1) == slots).to(probs.dtype)  # paper 002, eq. 4
    return merged_probs, merged_truth, groups.is_group


def unit_dice_loss(merged_probs: torch.Tensor, merged_truth: torch.Tensor, scored: torch.Tensor, is_group: torch.Tensor,
                   region: torch.Tensor, axis: int | None, smooth: float) -> torch.Tensor | None:
    """1 - merged Dice of one sample averaged over its scoring units; None when no unit holds a scored voxel.

    merged_probs and merged_truth are (G, *spatial) and already zero off the scored voxels (`scored`, float).
    """
    true_pos, prob_sum, truth_sum, count = (
        sum_per_unit(values, region, axis)
        for values in (merged_probs * merged_truth, merged_probs, merged_truth, scored))
    has_voxels = count[0] > 0
    if not bool(has_voxels.any()):
        return None
    # paper 002, eq. 2; 2 TP + FP + FN = sum p + sum y
    dice = (2 * true_pos + smooth) / (prob_sum + truth_sum + smooth)
    return 1.0 - dice[is_group][:, has_voxels].mean(dim=0).mean()


def merged_dice_loss(logits: torch.Tensor, targets: Targets, *, smooth: float = DICE_SMOOTH,
                     slice_axis: int | None = None, voxel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - mean merged Dice, averaged over the scoring units of each sample, then over samples that have one.

    Only annotated-region voxels (and `voxel_mask` ones, if given) are counted; the others get exactly zero
    gradient. Scoring units (whole sample or annotated slices) follow scoring_units.py.
    """
    merged_probs, merged_truth, is_group = merged_prediction_and_truth(logits, targets)
    scored = targets.region if voxel_mask is None else targets.region & voxel_mask
    weight = scored.unsqueeze(1).to(merged_probs.dtype)
    if not bool(scored.all()):  # a full region (partial and full labels) needs no zeroing: skip two passes
        merged_probs, merged_truth = merged_probs * weight, merged_truth * weight
    per_sample = []
    for b in range(logits.shape[0]):
        axis = slicing_axis(targets.region[b], slice_axis) if targets.may_slice(b) else None
        loss = unit_dice_loss(merged_probs[b], merged_truth[b], weight[b], is_group[b], targets.region[b], axis, smooth)
        if loss is not None:
            per_sample.append(loss)
    if not per_sample:
        return zero_with_graph(logits)
    return torch.stack(per_sample).mean()


@register_loss("merged_dice")
class MergedDice(TargetsLoss):
    """Paper 002, eq. 2: soft Dice over merged groups, per volume (partial) or per annotated slice (sparse).

    Args:
        smooth: eps added to numerator and denominator (paper 002: 1).
        slice_axis: spatial axis (0 = first spatial dim) along which sparse samples are cut into slices;
            None finds it from the region (the axis along which the region is a stack of whole slices).
    """

    def __init__(self, smooth: float = DICE_SMOOTH, slice_axis: int | None = None) -> None:
        super().__init__()
        self.smooth = float(smooth)
        self.slice_axis = slice_axis

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return merged_dice_loss(logits, targets, smooth=self.smooth, slice_axis=self.slice_axis)
