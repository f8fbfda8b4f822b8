"""Which torch device a run uses: 'auto' is the GPU when there is one; an absent GPU asked for is the user's error."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from unimos.errors import UnimosError


def resolve_device(name: str) -> torch.device:
    """The device `name` ('auto', 'cpu', 'cuda', 'cuda:N') means on this machine; named before any work starts."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UnimosError("--device", f"'{name}' was asked for but no CUDA GPU is available", "use --device cpu")
    return torch.device(name)


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it (from /proc/cpuinfo), or the platform's processor string: what every
    timing and every precision-dependent result names."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
