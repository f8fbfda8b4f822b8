"""Random draws of the augmentation: every one from the torch.Generator passed in (or a seed), never global state."""

from __future__ import annotations

import torch

from unimos.augment.config import Seed


def as_generator(generator: Seed) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator must be a torch.Generator or an integer seed, got {type(generator).__name__}")


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The generator itself when it lives on `device`, else one on `device` seeded from it (still reproducible)."""
    if generator.device == torch.device(device) or (generator.device.type == device.type == "cpu"):
        return generator
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def two_sided(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform factors, half of them below 1 and half above when (low, high) spans 1 (nnU-Net's rule, so that
    (0.7, 1.5) is not mostly > 1)."""
    below = torch.rand(shape, generator=generator) < 0.5
    fraction = torch.rand(shape, generator=generator, dtype=torch.float64)
    if low < 1.0 < high:
        start = torch.where(below, low, 1.0)
        stop = torch.where(below, 1.0, high)
        return start + (stop - start) * fraction
    return low + (high - low) * fraction


def indices_of(mask: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.nonzero(mask).flatten().to(device)
