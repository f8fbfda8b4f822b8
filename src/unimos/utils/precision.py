"""Numeric precision of the network's convolutions: float32, or bfloat16 / float16 autocast where the hardware has it.

On a CPU with AMX tiles (Intel Sapphire Rapids and later) oneDNN runs bfloat16 convolutions on the matrix units:
a 3D U-Net training step or inference window takes about half the float32 time (bench/precision.py). Without
native bfloat16 units the same autocast would be emulated and slower, so `auto` keeps float32 there. Weights,
optimiser state, losses and the sliding-window sums stay float32 in every mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from unimos.errors import UnimosError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_native_bfloat16() -> bool:
    """True when this CPU has AMX tiles, the units that make bfloat16 convolutions faster than float32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # a build without the probe's kernels
        return False


def check_precision(name: str) -> str:
    """The name itself if it is one of PRECISIONS, else a readable error."""
    if name not in PRECISIONS:
        raise UnimosError("--precision", f"'{name}' is not a precision unimos knows", f"use one of {list(PRECISIONS)}")
    return name


def resolve_precision(name: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `name` on `device`, None for plain float32.

    `auto`: bfloat16 on a CPU with AMX or a CUDA device that supports it, else float32. `float16` is for CUDA only
    (its gradients need loss scaling, which the training loop applies there); asked for on a CPU it is an error.
    """
    device = torch.device(device)
    check_precision(name)
    if name == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bfloat16() else None
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return None
    if name == "float16" and device.type != "cuda":
        raise UnimosError("--precision", "float16 autocast needs a CUDA device", "use bfloat16, auto or float32")
    return _DTYPES[name]


def precision_name(dtype: torch.dtype | None) -> str:
    """float32 / bfloat16 / float16: how a resolved precision is written to logs and records."""
    return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]


@contextlib.contextmanager
def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Iterator[None]:
    """torch.autocast with `dtype` on `device`, or nothing at all for float32 (None)."""
    if dtype is None:
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield
