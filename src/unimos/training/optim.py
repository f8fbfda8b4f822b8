"""Optimisers and learning-rate schedules by name."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from unimos.errors import UnimosError
from unimos.training.config import TrainConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (default), SGD with Nesterov momentum (nnU-Net), or RMSprop."""
    params = [p for p in parameters if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum, nesterov=True,
                               weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    raise UnimosError("--optimizer", f"'{config.optimizer}' is not known", "use adamw, sgd or rmsprop")


def build_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """`poly`: lr * (1 - step / iterations) ** power (nnU-Net); `step`: multiply by gamma every `step_every` steps."""
    if config.schedule == "poly":
        total, power = max(1, config.iterations), config.poly_power
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total) ** power)
    if config.schedule == "step":
        every = config.step_every or max(1, config.iterations // 3)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=config.step_gamma)
    raise UnimosError("--schedule", f"'{config.schedule}' is not known", "use poly or step")
