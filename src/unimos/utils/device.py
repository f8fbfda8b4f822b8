"""Which torch device a run uses: 'auto' is the GPU when there is one; an absent GPU asked for is the user's error."""

from __future__ import annotations

import torch

from unimos.errors import UnimosError


def resolve_device(name: str) -> torch.device:
    """The device `name` ('auto', 'cpu', 'cuda', 'cuda:N') means on this machine; named before any work starts."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UnimosError("--device", f"'{name}' was asked for but no CUDA GPU is available", "use --device cpu")
    return torch.device(name)
