"""Numeric precision of the network's convolutions: float32, or bfloat16 / float16 autocast where the hardware has it.

On a CPU with AMX tiles (Intel Sapphire Rapids and later) oneDNN runs bfloat16 convolutions on the matrix units:
a 3D U-Net training step or inference window takes about half the float32 time (bench/precision.py). A CPU with
AVX-512 BF16 instructions but no AMX (AMD EPYC Zen 4 and later) is faster in bfloat16 too: 1.52x per demo training
step and 2.15x per inference window on a 2-core AMD EPYC (bench/precision.py). Without either, the same autocast
is emulated: a demo training step took 48x the float32 time on a 2-core AMD EPYC without AVX-512 (Zen 3) and 2.8x
on a 2-core Intel Xeon with AVX-512F but no AVX-512 BF16, so `auto` keeps float32 there and an explicit `bfloat16`
is warned about (`emulated_precision_warning`). Weights, optimiser state, losses and the sliding-window sums stay
float32 in every mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from unimos.errors import UnimosError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_bfloat16_unit() -> str | None:
    """The unit that makes bfloat16 convolutions faster than float32 on this CPU: 'AMX', 'AVX-512 BF16' or None."""
    for unit, probe_name in (("AMX", "_is_amx_tile_supported"), ("AVX-512 BF16", "_is_avx512_bf16_supported")):
        probe = getattr(torch.cpu, probe_name, None)
        try:
            if probe is not None and probe():
                return unit
        except RuntimeError:  # a build without the probe's kernels
            continue
    return None


def cpu_has_native_bfloat16() -> bool:
    """True when this CPU runs bfloat16 convolutions natively (AMX tiles or AVX-512 BF16)."""
    return cpu_bfloat16_unit() is not None


def check_precision(name: str) -> str:
    """The name itself if it is one of PRECISIONS, else a readable error."""
    if name not in PRECISIONS:
        raise UnimosError("--precision", f"'{name}' is not a precision unimos knows", f"use one of {list(PRECISIONS)}")
    return name


def resolve_precision(name: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `name` on `device`, None for plain float32.

    `auto`: bfloat16 on a CPU with AMX or AVX-512 BF16, or a CUDA device that supports it, else float32. `float16`
    is for CUDA only (its gradients need loss scaling, which the training loop applies there); on a CPU it is an
    error.
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


def emulated_precision_warning(name: str, device: torch.device | str) -> str | None:
    """A warning when `name` asks the CPU for bfloat16 that it can only emulate (no AMX, no AVX-512 BF16), else None."""
    if name != "bfloat16" or torch.device(device).type != "cpu" or cpu_has_native_bfloat16():
        return None
    return ("this CPU has neither AMX nor AVX-512 BF16, so bfloat16 autocast is emulated: a demo training step took "
            "2.8 to 48 times as long as in float32 on such CPUs (bench/README.md); use --precision auto or float32")


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
