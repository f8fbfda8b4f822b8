"""The loss registry: a name -> factory map, so the trainer builds a loss from its method name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from unimos.utils.registry import Registry

LOSSES = Registry[nn.Module]("loss")


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a loss factory under `name` (importing `unimos.losses` registers them all)."""
    return LOSSES.register(name)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """The registered loss `name` built with `kwargs`; an unknown name raises a UnimosError listing the known ones."""
    return LOSSES.get(name)(**kwargs)
