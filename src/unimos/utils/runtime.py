"""Where and in which arithmetic one run computes: the device and the autocast precision, resolved once from the
user's words ('auto', 'cuda:1', 'bfloat16', ...) and passed down, so that every training round, pseudo-labelling
pass and scoring of one run uses the same pair and records the same name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from unimos.utils.device import resolve_device
from unimos.utils.precision import autocast, precision_name, resolve_precision


@dataclass(frozen=True)
class Runtime:
    """A resolved device and autocast dtype (None: plain float32)."""

    device: torch.device
    precision: torch.dtype | None

    @property
    def precision_name(self) -> str:
        """float32 / bfloat16 / float16, as logs and result files write it."""
        return precision_name(self.precision)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The network's forward pass in this runtime's precision."""
        with autocast(self.device, self.precision):
            yield


def resolve_runtime(device: str | torch.device = "auto", precision: str = "auto") -> Runtime:
    """The runtime `device` and `precision` mean on this machine; a missing GPU or float16 on a CPU is refused here,
    before any work starts."""
    resolved = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return Runtime(resolved, resolve_precision(precision, resolved))
