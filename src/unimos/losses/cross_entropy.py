"""Ambiguity-aware cross-entropy and focal loss: -log of the probability mass on each voxel's candidate set.

Paper 002, eq. 1 (and the target adaptive loss of paper 000, eq. 1): a voxel whose candidate set S_i holds
several classes is supervised with p_iS = sum_{c in S_i} p_ic; with singleton sets this is plain cross-entropy.
"""

from __future__ import annotations

import torch

from unimos.losses.base import TargetsLoss, zero_with_graph
from unimos.losses.registry import register_loss
from unimos.losses.targets import Targets


def candidate_log_prob(voxel_logits: torch.Tensor, voxel_candidates: torch.Tensor) -> torch.Tensor:
    """(N,) log sum_{c in S_i} softmax(logits_i)_c of (N, C) logits and bool candidates, in stable log-sum-exp form."""
    masked = voxel_logits.masked_fill(~voxel_candidates, float("-inf"))
    log_prob = torch.logsumexp(masked, dim=1) - torch.logsumexp(voxel_logits, dim=1)
    return log_prob.clamp(max=0.0)  # rounding can give +1e-7 when S_i holds every class


def scored_voxels(logits: torch.Tensor, targets: Targets,
                  voxel_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) logits and (N, C) candidate sets of the annotated-region voxels (and of `voxel_mask`, if given).

    Indexing (rather than multiplying by a mask) means voxels left out get exactly zero gradient.
    """
    scored = targets.region if voxel_mask is None else targets.region & voxel_mask
    batch_index = torch.arange(logits.shape[0], device=logits.device).view(-1, *([1] * (logits.ndim - 2)))
    batch_index = batch_index.expand_as(scored)[scored]
    voxel_logits = logits.movedim(1, -1)[scored]
    voxel_candidates = targets.tables[batch_index, targets.labels[scored]]
    return voxel_logits, voxel_candidates


def partial_cross_entropy(logits: torch.Tensor, targets: Targets, *, gamma: float = 0.0,
                          voxel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over annotated-region voxels of -(1 - p_iS)^gamma log p_iS; gamma = 0 is the partial cross-entropy."""
    voxel_logits, voxel_candidates = scored_voxels(logits, targets, voxel_mask)
    if voxel_logits.shape[0] == 0:
        return zero_with_graph(logits)
    log_prob = candidate_log_prob(voxel_logits, voxel_candidates)
    if gamma == 0.0:
        return -log_prob.mean()
    # paper 002, eq. 1: focal weight (1 - p)^gamma on the merged probability, 1 - p = -expm1(log p) stays accurate
    focal = (-torch.expm1(log_prob)).clamp(min=0.0).pow(gamma)
    return -(focal * log_prob).mean()


@register_loss("partial_ce")
class PartialCrossEntropy(TargetsLoss):
    """-log sum_{c in S_i} p_ic averaged over annotated-region voxels (paper 000, eq. 1; paper 002, eq. 1, gamma 0)."""

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return partial_cross_entropy(logits, targets)


@register_loss("partial_focal")
class PartialFocal(TargetsLoss):
    """Ambiguity-aware focal loss -(1 - p_iS)^gamma log p_iS over annotated-region voxels (paper 002, eq. 1)."""

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        return partial_cross_entropy(logits, targets, gamma=self.gamma)
