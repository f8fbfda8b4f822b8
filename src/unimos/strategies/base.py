"""The strategy interface: how one training step's loss is computed; the loop, sampler and checkpoints stay shared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unimos.errors import UnimosError
from unimos.utils.registry import Registry


@dataclass
class StepOutput:
    """A step's loss to back-propagate and the numbers worth logging."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Strategy(nn.Module):
    """Owns the networks it trains in `nets` ("main" is the one used for prediction).

    Subclasses implement `step` (and `after_step` for work after the optimiser step, such as an EMA update).
    `needs_unlabeled` tells the loop to draw unlabeled batches too; `extra_networks` names networks built besides
    "main" (each with its own seed); `defaults` lists the options a strategy takes, with their default values.
    """

    needs_unlabeled: bool = False
    extra_networks: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}

    def __init__(self, nets: dict[str, nn.Module], loss: nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(nets)
        self.loss = loss
        self.options = resolve_options(type(self).__name__, self.defaults, options or {})

    @property
    def main(self) -> nn.Module:
        return self.nets["main"]

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        raise NotImplementedError

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step; nothing by default."""

    def extra_state(self) -> dict[str, torch.Tensor]:
        """State besides the networks' weights that a resumed run needs (saved in checkpoints); none by default."""
        return {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `extra_state` returned; a key it lacks keeps its fresh value."""


def resolve_options(name: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The defaults updated with the given options; an unknown option is an error naming the known ones."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(f"{k}={v}" for k, v in defaults.items()) or "none"
        raise UnimosError("--strategy-option", f"{name} has no option {unknown}", f"use one of: {known}")
    return {**defaults, **given}


STRATEGIES: Registry[Strategy] = Registry("strategy")
