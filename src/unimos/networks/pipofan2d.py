"""`pipofan2d`: a compact 2D pyramid-input pyramid-output U-Net in the spirit of PIPO-FAN (paper 000, ref. [12]).

UniMOS segments slice-wise (slices resized to 256, cropped to 224) with PIPO-FAN as its base network:
- pyramid input: the image, average-pooled to every encoder scale, passes one shared convolution and is
  concatenated with the max-pooled encoder features of that scale (global and local context at each depth);
- pyramid output: every decoder scale has a 1x1 side output; the side outputs, upsampled to full size, are fused by
  a learned per-pixel attention over scales (softmax weights), which gives the final logits;
- deep supervision (optional): in training the coarser side outputs are returned too, at their own size.

Config keys:
    name: "pipofan2d".
    spatial_dims: optional, must be 2.
    filters: optional, feature channels per scale, finest first; filters[0] is the base width. Default
        [32, 64, 128, 256, 256]: four halvings, so H and W must be multiples of 16 (224 is).
    deep_supervision: optional, default false; when true, training-mode outputs are
        [fused logits (full size), side output at 1/2, at 1/4, ...] (each at its own size).
    slice_resize: optional, default 0 (off); N > 0 resizes every axial slice to N x N before the network sees it,
        in training (patches are cropped from the resized slice) and in inference (outputs resized back), as
        UniMOS does with 256 (preprocess/slices.py). Set by `unimos train --slice-resize` (which overrides a
        value in the plan's network entry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, UnetBasicBlock, UnetOutBlock, UnetUpBlock
from torch import nn

from unimos.data.plan_spec import ModelPlan
from unimos.errors import PlanError
from unimos.networks.base import Logits, SegmentationNetwork
from unimos.networks.dynunet import ACTIVATION, NORM
from unimos.networks.registry import (
    check_config_keys,
    check_spatial_dims,
    positive_ints,
    register_network,
    register_plan_config,
)

DEFAULT_FILTERS = (32, 64, 128, 256, 256)
# 224 = 7 * 2**5: more than five halvings would not divide UniMOS's 224-pixel crops.
MAX_SCALES = 6


class PipoFan2D(SegmentationNetwork):
    """Pyramid-input pyramid-output 2D U-Net with attention fusion of the side outputs.

    Args:
        in_channels: image channels.
        num_classes: output classes, background included.
        filters: feature channels per scale, finest first (at least two scales).
        deep_supervision: return the coarser side outputs too in training mode.
        slice_resize: side every axial slice is resized to before the network sees it; 0 keeps the plan's grid.
    """

    def __init__(self, in_channels: int, num_classes: int, filters: Sequence[int] = DEFAULT_FILTERS,
                 deep_supervision: bool = False, slice_resize: int = 0) -> None:
        super().__init__(2, in_channels, num_classes, deep_supervision)
        self.slice_resize = int(slice_resize)
        if not 2 <= len(filters) <= MAX_SCALES:
            raise ValueError(f"filters needs 2 to {MAX_SCALES} scales, got {list(filters)}")
        self.filters = [int(f) for f in filters]
        stem_width = self.filters[0]
        block = dict(spatial_dims=2, kernel_size=3, stride=1, norm_name=NORM, act_name=ACTIVATION)
        # One convolution shared by every pyramid level (PIPO-FAN's "shared convolution" on the pooled inputs).
        self.pyramid_stem = Convolution(2, in_channels, stem_width, kernel_size=3, norm=NORM, act=ACTIVATION)
        self.encoder = nn.ModuleList([UnetBasicBlock(in_channels=in_channels, out_channels=self.filters[0], **block)])
        for coarser, finer in zip(self.filters[1:], self.filters[:-1]):
            self.encoder.append(UnetBasicBlock(in_channels=finer + stem_width, out_channels=coarser, **block))
        # Decoder, deepest first: transposed convolution x2, concatenation with the skip, two convolutions.
        self.decoder = nn.ModuleList([
            UnetUpBlock(in_channels=coarser, out_channels=finer, upsample_kernel_size=2, **block)
            for coarser, finer in zip(self.filters[:0:-1], self.filters[-2::-1])])
        # Side outputs, finest first (scale s has size 1 / 2**s).
        self.side_outputs = nn.ModuleList([UnetOutBlock(2, f, num_classes) for f in self.filters[:-1]])
        scales = len(self.side_outputs)
        self.fusion_attention = nn.Conv2d(scales * num_classes, scales, kernel_size=1)
        # Zero start: the fusion begins as the plain mean of the side outputs and learns where to trust which scale.
        nn.init.zeros_(self.fusion_attention.weight)
        nn.init.zeros_(self.fusion_attention.bias)

    def required_divisor(self) -> tuple[int, int]:
        halvings = 2 ** (len(self.filters) - 1)
        return halvings, halvings

    def _forward(self, x: torch.Tensor, feature_dropout: float) -> tuple[Logits, torch.Tensor]:
        skips = [self.encoder[0](x)]
        for scale, level in enumerate(self.encoder[1:], start=1):
            pyramid_input = self.pyramid_stem(F.avg_pool2d(x, 2 ** scale))
            skips.append(level(torch.cat([F.max_pool2d(skips[-1], 2), pyramid_input], dim=1)))
        # paper 000, eq. 3: UniMatch's feature perturbation on the encoder features (skips and bottleneck).
        skips = [self.perturb_features(s, feature_dropout) for s in skips]
        features = skips.pop()
        sides: list[torch.Tensor] = [features] * len(skips)  # side output per decoder scale, finest (0) first
        for step, scale in enumerate(reversed(range(len(skips)))):
            features = self.decoder[step](features, skips[scale])
            sides[scale] = self.side_outputs[scale](features)
        size = x.shape[2:]
        upsampled = [sides[0]] + [F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in sides[1:]]
        weights = torch.softmax(self.fusion_attention(torch.cat(upsampled, dim=1)), dim=1)  # (B, scales, H, W)
        fused = sum(weights[:, i:i + 1] * side for i, side in enumerate(upsampled))
        if self.training and self.deep_supervision:
            return [fused, *sides[1:]], features
        return fused, features


@register_network("pipofan2d")
def build_pipofan2d(config: Mapping[str, Any], in_channels: int, num_classes: int) -> PipoFan2D:
    """A `PipoFan2D` from a config dict (keys in the module docstring)."""
    check_config_keys(config, required=set(), optional={"spatial_dims", "filters", "deep_supervision", "slice_resize"})
    check_spatial_dims(config, (2,))
    where = "plan 'network' (pipofan2d)"
    filters = positive_ints(config, "filters", config.get("filters", list(DEFAULT_FILTERS)))
    if not 2 <= len(filters) <= MAX_SCALES:
        raise PlanError(where, f"has {len(filters)} filters", f"give 2 to {MAX_SCALES} (one per scale)")
    deep_supervision = config.get("deep_supervision", False)
    if not isinstance(deep_supervision, bool):
        raise PlanError(where, f"has deep_supervision {deep_supervision!r}", "set it to true or false")
    slice_resize = config.get("slice_resize", 0)
    where = "--slice-resize (pipofan2d's slice_resize)"
    if isinstance(slice_resize, bool) or not isinstance(slice_resize, int) or slice_resize < 0:
        raise PlanError(where, f"is {slice_resize!r}", "give a whole number of pixels, 0 for off")
    halvings = 2 ** (len(filters) - 1)
    if slice_resize % halvings:
        raise PlanError(where, f"is {slice_resize}, not a multiple of {halvings} (the network halves "
                        f"{len(filters) - 1} times)", f"use a multiple of {halvings}, e.g. 256")
    return PipoFan2D(in_channels, num_classes, filters, deep_supervision, slice_resize)


@register_plan_config("pipofan2d")
def pipofan2d_config_from_plan(plan: ModelPlan) -> dict[str, Any]:
    """The plan's filters (at most MAX_SCALES of them) and its deep-supervision choice, for 2D slices."""
    planned = plan.network
    filters = planned.get("filters", list(DEFAULT_FILTERS))
    return {"name": "pipofan2d", "spatial_dims": 2, "filters": list(filters)[:MAX_SCALES],
            "deep_supervision": bool(planned.get("deep_supervision", False))}
