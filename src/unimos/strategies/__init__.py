"""Strategies: how one training step computes its loss (supervised, semi-supervised methods)."""

from unimos.strategies import cps, guided_cps, mean_teacher, self_training, supervised, unimatch  # noqa: F401  (registers)
from unimos.strategies.base import STRATEGIES, StepOutput, Strategy

__all__ = ["STRATEGIES", "StepOutput", "Strategy"]
