"""Entropy minimisation: confident predictions everywhere, more so where a patch carries no annotation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unimos.losses.base import TargetsLoss
from unimos.losses.registry import register_loss
from unimos.losses.targets import Targets

NO_ANNOTATION_WEIGHT = 3.0  # paper 002, eq. 6: lambda = 3 for examples without annotations, else 1


def voxel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(B, *spatial) Shannon entropy -sum_c p_c log p_c of the softmax over classes (paper 002, eq. 5)."""
    log_probs = F.log_softmax(logits, dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1)


def has_annotated_foreground(targets: Targets) -> torch.Tensor:
    """(B,) bool: the sample holds at least one annotated-region voxel labeled with a class other than background."""
    return (targets.region & (targets.labels != 0)).flatten(1).any(dim=1)


def weighted_entropy(logits: torch.Tensor, targets: Targets,
                     no_annotation_weight: float = NO_ANNOTATION_WEIGHT) -> torch.Tensor:
    """Batch mean of each sample's mean voxel entropy, times 3 for samples without annotated foreground (paper 002)."""
    per_sample = voxel_entropy(logits).flatten(1).mean(dim=1)
    weight = torch.where(has_annotated_foreground(targets), 1.0, no_annotation_weight).to(per_sample.dtype)
    return (weight * per_sample).mean()


@register_loss("entropy")
class Entropy(TargetsLoss):
    """Paper 002, eq. 5: mean voxel entropy over all voxels (class-agnostic), weight 3 without annotation (eq. 6)."""

    def __init__(self, no_annotation_weight: float = NO_ANNOTATION_WEIGHT) -> None:
        super().__init__()
        self.no_annotation_weight = float(no_annotation_weight)

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return weighted_entropy(logits, targets, self.no_annotation_weight)
