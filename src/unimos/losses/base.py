"""The base of every registered loss: logits (or a deep-supervision list of them) and Targets in, scalar out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unimos.losses.deep_supervision import deep_supervised
from unimos.losses.targets import Targets


class TargetsLoss(nn.Module):
    """A loss from candidate sets; subclasses write `single_scale` on float32 (B, C, *spatial) logits.

    `forward` accepts one logits tensor or a list (deep supervision: full resolution first), float16/bfloat16
    included: the loss is always computed in float32 with autocast off.
    """

    def forward(self, logits: torch.Tensor | Sequence[torch.Tensor], targets: Targets) -> torch.Tensor:
        return deep_supervised(self.single_scale, logits, targets)

    def single_scale(self, logits: torch.Tensor, targets: Targets) -> torch.Tensor:
        """The loss for one output whose spatial shape equals the targets'."""
        raise NotImplementedError


def zero_with_graph(logits: torch.Tensor) -> torch.Tensor:
    """A zero scalar connected to `logits`, for batches with nothing to score (backward gives exact zeros)."""
    return logits.sum() * 0.0
