"""Pipelines: work that runs the training loop more than once or around other steps (self-training rounds; later
the demo, progressive stages and cascade training). Above training and inference, below the CLI.

A new multi-round pipeline is one module here decorated with `@PIPELINES.register("NAME")` (NAME is its strategy,
registered with `multi_round = True` in strategies/) plus one import line below."""

from unimos.pipelines import self_training  # noqa: F401  (registers)
from unimos.pipelines.registry import PIPELINES

__all__ = ["PIPELINES"]
