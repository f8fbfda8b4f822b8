"""Pieces the semi-supervised strategies share: pseudo-labels and their confidence, the masked pseudo-label loss,
which voxels of a partially labeled sample a pseudo-label may fill, CutMix boxes, and a consistency ramp-up.

All randomness comes from the global torch generator, which the training loop seeds and saves in checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from unimos.losses.targets import Targets


def pseudo_labels(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, label) per voxel: the max and argmax of the softmax, detached (paper 000, section III.B)."""
    probs = torch.softmax(logits.detach().float(), dim=1)
    confidence, labels = probs.max(dim=1)
    return confidence, labels


def confident(confidence: torch.Tensor, tau: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Voxels whose pseudo-label is trusted: confidence at or above `tau` (paper 000, eqs. 2-3: 1(max p >= tau)),
    within `valid` (the voxels a pseudo-label may fill) when given."""
    mask = confidence >= tau
    return mask if valid is None else mask & valid


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the voxels of `mask`, summed and divided by all voxels (paper 000, eqs. 2-3: 1/N sum f * I).

    Dividing by every voxel rather than the masked ones keeps a handful of confident voxels from dominating early,
    as in UniMatch.
    """
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return (ce * mask.to(ce.dtype)).sum() / max(1, mask.numel())


def admissible(labels: torch.Tensor, targets: Targets) -> torch.Tensor:
    """Where a pseudo-label may stand on a (partially) labeled sample: the voxel's candidate set holds more than one
    class (its class is not known) and the pseudo-label is one of those candidates. Off the annotated region every
    class is a candidate, so any pseudo-label is admissible there."""
    candidates = targets.candidates()  # (B, C, *S)
    ambiguous = candidates.sum(dim=1) > 1
    agrees = torch.gather(candidates, 1, labels.unsqueeze(1)).squeeze(1)
    return ambiguous & agrees


def cutmix_box(batch: int, spatial: Sequence[int], generator: torch.Generator | None = None,
               area: tuple[float, float] = (0.02, 0.4), probability: float = 0.5) -> torch.Tensor:
    """(B, *S) bool boxes to paste from another sample; each sample gets one with `probability` (UniMatch).

    The box's volume fraction is drawn from `area`, its aspect ratio near 1 (each side scaled by 0.7..1.4).
    """
    mask = torch.zeros((batch, *spatial), dtype=torch.bool)
    for b in range(batch):
        if float(torch.rand((), generator=generator)) >= probability:
            continue
        fraction = area[0] + (area[1] - area[0]) * float(torch.rand((), generator=generator))
        side = fraction ** (1.0 / len(spatial))
        index: list[slice] = [slice(b, b + 1)]
        for size in spatial:
            jitter = 0.7 + 0.7 * float(torch.rand((), generator=generator))
            length = max(1, min(size, int(round(size * side * jitter))))
            start = int(torch.randint(0, size - length + 1, (), generator=generator))
            index.append(slice(start, start + length))
        mask[tuple(index)] = True
    return mask


def mix_with_partner(box: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Paste, inside each sample's box, the next sample's content (partner = roll by one) into every tensor.

    Images (B, C, *S) and per-voxel maps (B, *S) are mixed with the same box, so pseudo-labels and confidences
    follow the pixels they belong to.
    """
    mixed = []
    for tensor in tensors:
        partner = torch.roll(tensor, shifts=1, dims=0)
        where = box.unsqueeze(1) if tensor.dim() == box.dim() + 1 else box
        mixed.append(torch.where(where.to(tensor.device), partner, tensor))
    return mixed


def paste_from_partner(box: torch.Tensor, tensors: Sequence[torch.Tensor],
                       partners: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Paste, inside each sample's box, sample `b % P` of the separate partner batch (P samples) into every tensor
    (UniMatch's released CutMix: the partner is another unlabeled batch, not a sample of the same one).

    Images (B, C, *S) and per-voxel maps (B, *S) are mixed with the same box, so pseudo-labels and confidences follow
    the pixels they belong to.
    """
    mixed = []
    for tensor, partner in zip(tensors, partners):
        index = torch.arange(tensor.shape[0], device=partner.device) % partner.shape[0]
        where = box.unsqueeze(1) if tensor.dim() == box.dim() + 1 else box
        mixed.append(torch.where(where.to(tensor.device), partner[index].to(tensor.device), tensor))
    return mixed


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """exp(-5 (1 - t)^2) for t = step / rampup_steps, then 1 (Laine & Aila; used by mean teacher and CPS)."""
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step, 0), rampup_steps) / rampup_steps
    return float(math.exp(-5.0 * (1.0 - t) ** 2))
