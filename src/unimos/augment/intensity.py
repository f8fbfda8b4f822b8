"""Intensity transforms of the image alone (noise, blur, brightness, contrast, low resolution, gamma), in place."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from unimos.augment.config import AugmentConfig
from unimos.augment.random_draws import device_generator, indices_of, two_sided, uniform


def intensity_in_place(image: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> None:
    """nnU-Net's order: noise, blur, brightness, contrast, gamma; each on the samples that drew it."""
    batch, channels, n = image.shape[0], image.shape[1], image.dim() - 2
    spatial = tuple(range(2, n + 2))
    view = (-1, channels, *([1] * n))

    def chosen(probability: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator) < probability

    noise = chosen(config.noise_probability)
    noise_sigma = uniform(0.0, config.noise_max_sigma, (batch,), generator)
    blur = chosen(config.blur_probability)
    blur_sigma = uniform(*config.blur_sigma_range, (batch, n), generator)
    brightness = chosen(config.brightness_probability)
    brightness_factor = uniform(*config.brightness_range, (batch, channels), generator)
    contrast = chosen(config.contrast_probability)
    contrast_factor = two_sided(*config.contrast_range, (batch, channels), generator)
    gamma = chosen(config.gamma_probability)
    gamma_exponent = two_sided(*config.gamma_range, (batch, channels), generator)

    index = indices_of(noise, image.device)
    if index.numel():
        noise_generator = device_generator(generator, image.device)
        sigma = noise_sigma[noise].to(device=image.device, dtype=image.dtype).view(-1, *([1] * (n + 1)))
        shape = (index.numel(), *image.shape[1:])
        image[index] += sigma * torch.randn(shape, generator=noise_generator, device=image.device, dtype=image.dtype)

    index = indices_of(blur, image.device)
    if index.numel():
        image[index] = gaussian_blur(image[index], blur_sigma[blur])

    index = indices_of(brightness, image.device)
    if index.numel():
        image[index] *= brightness_factor[brightness].to(device=image.device, dtype=image.dtype).view(view)

    index = indices_of(contrast, image.device)
    if index.numel():
        part = image[index]
        mean = part.mean(dim=spatial, keepdim=True)
        low, high = part.amin(dim=spatial, keepdim=True), part.amax(dim=spatial, keepdim=True)
        factor = contrast_factor[contrast].to(device=image.device, dtype=image.dtype).view(view)
        image[index] = torch.minimum(torch.maximum((part - mean) * factor + mean, low), high)

    index = indices_of(gamma, image.device)
    if index.numel():
        part = image[index]
        low, high = part.amin(dim=spatial, keepdim=True), part.amax(dim=spatial, keepdim=True)
        extent = (high - low).clamp_min(1e-7)
        exponent = gamma_exponent[gamma].to(device=image.device, dtype=image.dtype).view(view)
        image[index] = ((part - low) / extent).clamp(0, 1).pow(exponent) * extent + low


def gaussian_blur(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (k, C, *S) with per-sample, per-axis sigma (k, n) in voxels; edges replicated."""
    k, n = image.shape[0], image.dim() - 2
    radius = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    out = image
    for axis in range(n):
        weights = torch.exp(-0.5 * (taps.view(1, -1) / sigma[:, axis].view(-1, 1)) ** 2)
        weights = (weights / weights.sum(dim=1, keepdim=True)).to(device=image.device, dtype=image.dtype)
        padding = [0] * (2 * n)
        padding[2 * (n - 1 - axis)] = padding[2 * (n - 1 - axis) + 1] = radius  # F.pad counts from the last axis
        padded = F.pad(out, padding, mode="replicate")
        size, dim = out.shape[axis + 2], axis + 2
        shape = (k, *([1] * (n + 1)))
        result = padded.narrow(dim, 0, size) * weights[:, 0].view(shape)
        for tap in range(1, 2 * radius + 1):
            result += padded.narrow(dim, tap, size) * weights[:, tap].view(shape)
        out = result
    return out
