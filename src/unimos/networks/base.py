"""The contract every unimos network keeps, so trainer, strategies and predictor never ask which one they hold.

A network maps `x` (B, in_channels, *spatial) to logits (B, num_classes, *spatial), one softmax over all project
classes. Besides the plain forward pass it offers what the semi-supervised strategies need:

- `forward(x, feature_dropout=p)`: UniMatch's feature perturbation (paper 000, eq. 3-4: "nn.Dropout2d(0.5)" on the
  encoder features), channel dropout on every encoder feature map (skips and bottleneck) before decoding;
- `forward_with_features(x)`: the logits and the last decoder feature map, whose per-class statistics give the
  Gaussian mixture of GuidedNet (paper 003, 3D-CGMM);
- `required_divisor()`: what each spatial size must be a multiple of, so the predictor can pad.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

# A tensor (B, C, *spatial), or in training mode with deep supervision a list: the full-resolution logits first,
# then coarser logits at their own (smaller) resolution, finest to coarsest.
Logits = Union[torch.Tensor, list[torch.Tensor]]


def full_resolution(logits: Logits) -> torch.Tensor:
    """The full-resolution logits of a network output, whether or not it carries deep-supervision outputs."""
    return logits[0] if isinstance(logits, list) else logits


class SegmentationNetwork(nn.Module, ABC):
    """Base class of every registered network.

    Args:
        spatial_dims: 2 (slice-wise network) or 3 (volumes).
        in_channels: image channels (modalities) of the input.
        num_classes: output channels, background included (index 0).
        deep_supervision: whether training-mode outputs are a list of logits at several resolutions.

    Subclasses implement `_forward` and `required_divisor`; the checks on the input live here, once.
    """

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, deep_supervision: bool) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"need in_channels >= 1 and num_classes >= 2 (background + one class), "
                             f"got {in_channels} and {num_classes}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor, feature_dropout: float = 0.0,
                with_features: bool = False) -> Logits | tuple[Logits, torch.Tensor]:
        """Logits (B, num_classes, *spatial) for `x` (B, in_channels, *spatial).

        Args:
            x: input batch; each spatial size a multiple of `required_divisor()`.
            feature_dropout: probability of channel dropout on the encoder features (skips and bottleneck) before
                decoding, UniMatch's feature perturbation; applied in training mode only, like `nn.Dropout`.
            with_features: also return the last decoder feature map, as `forward_with_features` does; through
                `forward`, a DistributedDataParallel wrapper still synchronises the gradients.

        Returns:
            The logits; in training mode with deep supervision a list `[full resolution, coarser, ...]`.
        """
        logits, features = self.forward_with_features(x, feature_dropout)
        return (logits, features) if with_features else logits

    def forward_with_features(self, x: torch.Tensor, feature_dropout: float = 0.0) -> tuple[Logits, torch.Tensor]:
        """The logits (as `forward`) and the last decoder feature map (B, F, *spatial) before the output layer."""
        self.check_input(x)
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {feature_dropout}")
        return self._forward(x, feature_dropout)

    @abstractmethod
    def _forward(self, x: torch.Tensor, feature_dropout: float) -> tuple[Logits, torch.Tensor]:
        """Compute (logits, last decoder features) for a checked input."""

    @abstractmethod
    def required_divisor(self) -> tuple[int, ...]:
        """Per spatial axis, the number every input size must be a multiple of (product of the downsamplings)."""

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the expected layout when `x` does not fit this network."""
        name = type(self).__name__
        if x.ndim != self.spatial_dims + 2:
            layout = "(B, C, H, W)" if self.spatial_dims == 2 else "(B, C, D, H, W)"
            raise ValueError(f"{name} is a {self.spatial_dims}D network: it expects an input laid out {layout} "
                             f"({self.spatial_dims + 2} axes), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name} was built for {self.in_channels} input channel(s), "
                             f"got {x.shape[1]} in shape {tuple(x.shape)}")
        divisor = self.required_divisor()
        spatial = tuple(int(n) for n in x.shape[2:])
        if any(n % d for n, d in zip(spatial, divisor)):
            raise ValueError(f"{name} needs each spatial size to be a multiple of {divisor}, got {spatial}; "
                             f"pad the input (the predictor pads to required_divisor())")

    def perturb_features(self, features: torch.Tensor, p: float) -> torch.Tensor:
        """Channel dropout (whole feature maps, as UniMatch's nn.Dropout2d) with probability `p` in training mode."""
        if p == 0.0 or not self.training:
            return features
        if features.ndim == 4:
            return F.dropout2d(features, p, training=True)
        return F.dropout3d(features, p, training=True)
