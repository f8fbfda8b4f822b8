"""Strategies: how one training step computes its loss (supervised, semi-supervised methods)."""

from unimos.strategies import (  # noqa: F401  (registers)
    cps,
    guided_cps,
    lesion_crops,
    mean_teacher,
    progressive,
    self_training,
    supervised,
    unimatch,
)
from unimos.strategies.base import STRATEGIES, StepOutput, Strategy

__all__ = ["STRATEGIES", "StepOutput", "Strategy"]


def is_multi_round(strategy: str) -> bool:
    """Whether a strategy runs the training loop several times (self-training: a pipeline) rather than once."""
    return bool(getattr(STRATEGIES.get(strategy), "multi_round", False))
