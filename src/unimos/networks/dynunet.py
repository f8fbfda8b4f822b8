"""`dynunet`: MONAI's DynUNet (nnU-Net's U-Net) built from the plan, the default 3D network.

Config keys (the plan's "network" dict, written by `unimos plan`):
    name: "dynunet".
    spatial_dims: 3 (or 2 for a 2D DynUNet); must match the length of each kernel size and stride.
    kernel_size: one kernel per level, e.g. [[3, 3, 3], [3, 3, 3], ...].
    strides: one stride per level, the first all ones (full-resolution output), e.g. [[1, 1, 1], [2, 2, 2], ...].
    filters: feature channels per level, as many as strides, e.g. [16, 32, 64, 128, 256].
    deep_supervision: optional, default false; when true, training-mode outputs are a list with one extra output
        per decoder level below full resolution except the deepest (nnU-Net's choice), at its own resolution.

The blocks, their initialisation, InstanceNorm and LeakyReLU are MONAI's (the 3D network's instance norms swapped
for layout-keeping twins and its weights kept channels-last, see layout.py); only the forward pass is written here,
walking those blocks in DynUNet's order so that encoder features can be perturbed and decoder features returned.
MONAI's own `DynUNet.forward` recurses through `skip_layers`, which share the same blocks; we do not keep them, so
the state dict holds every tensor once (safetensors refuses shared tensors). Load weights saved from a plain MONAI
DynUNet with `load_monai_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.nets import DynUNet

from unimos.data.plan_spec import ModelPlan
from unimos.errors import PlanError
from unimos.networks.base import Logits, SegmentationNetwork
from unimos.networks.layout import channels_last, layout_keeping_norms
from unimos.networks.registry import (
    check_config_keys,
    check_spatial_dims,
    positive_ints,
    register_network,
    register_plan_config,
)

NORM = ("INSTANCE", {"affine": True})
ACTIVATION = ("leakyrelu", {"inplace": True, "negative_slope": 0.01})


class DynUNetSegmenter(SegmentationNetwork):
    """MONAI DynUNet behind the unimos network contract.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        num_classes: output classes, background included.
        kernel_size: per level, a kernel size per axis.
        strides: per level, a stride per axis; the first must be all ones.
        filters: per level, the feature channels.
        deep_supervision: add MONAI's deep-supervision heads (len(strides) - 2 of them).
    """

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, kernel_size: Sequence[Sequence[int]],
                 strides: Sequence[Sequence[int]], filters: Sequence[int], deep_supervision: bool = False) -> None:
        super().__init__(spatial_dims, in_channels, num_classes, deep_supervision)
        if len(strides) < 3 or not (len(kernel_size) == len(strides) == len(filters)):
            raise ValueError(f"kernel_size, strides and filters need one entry per level (at least 3 levels), got "
                             f"{len(kernel_size)}, {len(strides)} and {len(filters)}")
        if any(s != 1 for s in strides[0]):
            raise ValueError(f"the first stride must be all ones so the logits have the input's size, got {strides[0]}")
        self.strides = [list(s) for s in strides]
        monai_net = DynUNet(spatial_dims, in_channels, num_classes, kernel_size=kernel_size, strides=strides,
                            upsample_kernel_size=strides[1:], filters=filters, norm_name=NORM, act_name=ACTIVATION,
                            deep_supervision=deep_supervision, deep_supr_num=len(strides) - 2)
        # MONAI's blocks, in its order: input block and downsamples (encoder), bottleneck, upsamples (deepest first).
        self.input_block = monai_net.input_block
        self.downsamples = monai_net.downsamples
        self.bottleneck = monai_net.bottleneck
        self.upsamples = monai_net.upsamples
        self.output_block = monai_net.output_block
        if deep_supervision:
            self.deep_supervision_heads = monai_net.deep_supervision_heads
        if spatial_dims == 3:  # networks/layout.py: channels-last 3D convolutions run 1.5-2.3x faster on a CPU
            channels_last(layout_keeping_norms(self), spatial_dims)

    def required_divisor(self) -> tuple[int, ...]:
        divisor = [1] * self.spatial_dims
        for stride in self.strides:
            divisor = [d * s for d, s in zip(divisor, stride)]
        return tuple(divisor)

    def _forward(self, x: torch.Tensor, feature_dropout: float) -> tuple[Logits, torch.Tensor]:
        skips = [self.input_block(x)]
        for down in self.downsamples:
            skips.append(down(skips[-1]))
        bottom = self.bottleneck(skips[-1])
        # paper 000, eq. 3: perturb the encoder's features after encoding, so the encoder itself runs unperturbed.
        skips = [self.perturb_features(s, feature_dropout) for s in skips]
        features = self.perturb_features(bottom, feature_dropout)
        decoded = []  # deepest level first; the last is full resolution
        for up, skip in zip(self.upsamples, reversed(skips)):
            features = up(features, skip)
            decoded.append(features)
        logits = self.output_block(features).contiguous()  # losses and windows sum faster in the standard layout
        if self.training and self.deep_supervision:
            # MONAI's head i reads the decoder output one level below the previous: level i + 1 (0 = full size).
            coarser = [head(decoded[-2 - i]).contiguous() for i, head in enumerate(self.deep_supervision_heads)]
            return [logits, *coarser], features
        return logits, features

    def load_monai_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load weights of a plain MONAI DynUNet with the same arguments (its `skip_layers.*` duplicates dropped)."""
        kept = {k: v for k, v in state_dict.items() if not k.startswith("skip_layers.")}
        self.load_state_dict(kept, strict=True)


def _per_axis(config: Mapping[str, Any], key: str) -> list[list[int]]:
    values = config[key]
    if not isinstance(values, (list, tuple)) or not values:
        raise PlanError(f"plan 'network' ({config.get('name')})", f"'{key}' is {values!r}, not a list per level",
                        f"give '{key}' as e.g. [[3, 3, 3], [3, 3, 3], [3, 3, 3]]")
    return [positive_ints(config, f"{key}[{level}]", v) for level, v in enumerate(values)]


@register_network("dynunet")
def build_dynunet(config: Mapping[str, Any], in_channels: int, num_classes: int) -> DynUNetSegmenter:
    """A `DynUNetSegmenter` from a plan's network dict (keys in the module docstring)."""
    check_config_keys(config, required={"kernel_size", "strides", "filters"},
                      optional={"spatial_dims", "deep_supervision"})
    where = "plan 'network' (dynunet)"
    kernel_size, strides = _per_axis(config, "kernel_size"), _per_axis(config, "strides")
    filters = positive_ints(config, "filters", config["filters"])
    axes = {len(v) for v in kernel_size + strides}
    if len(axes) != 1:
        raise PlanError(where, "kernel sizes and strides do not all have the same number of axes",
                        "give every kernel size and stride 3 values (2 for a 2D network)")
    spatial_dims = check_spatial_dims(config, (3, 2), implied=axes.pop())
    if len(strides) < 3 or not (len(kernel_size) == len(strides) == len(filters)):
        raise PlanError(where, f"has {len(kernel_size)} kernel sizes, {len(strides)} strides and {len(filters)} "
                        "filters", "give all three one entry per level, at least 3 levels")
    if any(s != 1 for s in strides[0]):
        raise PlanError(where, f"has first stride {strides[0]}", "make the first stride all ones")
    if any(k % 2 == 0 for level in kernel_size for k in level):
        raise PlanError(where, f"has an even kernel size in {kernel_size}", "use odd kernel sizes such as 3")
    deep_supervision = config.get("deep_supervision", False)
    if not isinstance(deep_supervision, bool):
        raise PlanError(where, f"has deep_supervision {deep_supervision!r}", "set it to true or false")
    return DynUNetSegmenter(spatial_dims, in_channels, num_classes, kernel_size, strides, filters, deep_supervision)


@register_plan_config("dynunet")
def dynunet_config_from_plan(plan: ModelPlan) -> dict[str, Any]:
    """`unimos plan` always writes a dynunet entry; a plan edited to another network has none to derive from."""
    name = plan.network.get("name")
    raise PlanError("plan 'network'", f"names {name!r}, not 'dynunet', and so holds no DynUNet kernel sizes and "
                    "strides", "run `unimos plan` again to get a dynunet entry")
