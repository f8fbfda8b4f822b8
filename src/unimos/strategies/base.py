"""The strategy interface: how one training step's loss is computed; the loop, sampler and checkpoints stay shared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unimos.utils.registry import Registry


@dataclass
class StepOutput:
    """A step's loss to back-propagate and the numbers worth logging."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Strategy(nn.Module):
    """Owns the networks it trains in `nets` ("main" is the one used for prediction).

    Subclasses implement `step`. `needs_unlabeled` tells the loop to draw unlabeled batches too.
    """

    needs_unlabeled: bool = False

    def __init__(self, nets: dict[str, nn.Module], loss: nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.loss = loss
        self.options = dict(options or {})

    @property
    def main(self) -> nn.Module:
        return self.nets["main"]

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        raise NotImplementedError


STRATEGIES: Registry[Strategy] = Registry("strategy")
