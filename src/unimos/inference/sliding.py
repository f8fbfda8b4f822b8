"""Network outputs for a whole (preprocessed) volume: MONAI sliding-window inference, optional mirror TTA."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import nn

from unimos.preprocess.slices import resize_slices
from unimos.utils.precision import autocast


def _plain_logits(network: nn.Module, precision: torch.dtype | None = None):
    """Deep-supervision networks return lists in training mode; inference wants the full-resolution output.

    With a `precision` the network runs under autocast and its logits come back as float32, so that MONAI's
    Gaussian-weighted sum of the windows is accumulated in float32."""
    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, precision):
            out = network(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.float()
    return run


@torch.no_grad()
def predict_probabilities(network: nn.Module, image: torch.Tensor, patch_size: Sequence[int],
                          overlap: float | Sequence[float] = 0.5, mirror: bool = False, sw_batch_size: int = 2,
                          gaussian: bool = True, precision: torch.dtype | None = None) -> torch.Tensor:
    """Softmax probabilities (1, C, *spatial) for an image (1, C_in, *spatial), by Gaussian-weighted windows.

    `patch_size` is the window size (the plan's patch, or larger windows from `inference.windows`); `overlap` a
    fraction, or one per spatial axis. With `mirror`, the average over every combination of flipped spatial axes
    (2^d passes). `precision`: autocast dtype of the network (utils/precision.py); None is float32.
    """
    network.eval()
    if int(getattr(network, "spatial_dims", 3)) == 2 and image.ndim == 5:
        # A 2D network sees axial slices: (1, C, X, Y, Z) -> a batch of Z slices (Z, C, X, Y) and back; one that
        # resizes slices (UniMOS) sees them resized, and its probabilities are resized back (bilinear keeps sum 1).
        slices = image[0].permute(3, 0, 1, 2)
        resize = int(getattr(network, "slice_resize", 0))
        chunks = []
        for i in range(0, slices.shape[0], 16):
            chunk = slices[i:i + 16]
            if resize:
                chunk = resize_slices(chunk, (resize, resize))
            probs = predict_probabilities(network, chunk, patch_size[:2], overlap, mirror, sw_batch_size, gaussian,
                                          precision)
            chunks.append(resize_slices(probs, slices.shape[2:]) if resize else probs)
        return torch.cat(chunks).permute(1, 2, 3, 0)[None]
    run = _plain_logits(network, precision)
    spatial = list(range(2, image.ndim))
    flips = [()] + [combo for r in range(1, len(spatial) + 1) for combo in itertools.combinations(spatial, r)] \
        if mirror else [()]
    total = None
    for axes in flips:
        x = torch.flip(image, axes) if axes else image
        logits = sliding_window_inference(x, roi_size=list(patch_size), sw_batch_size=sw_batch_size, predictor=run,
                                          overlap=overlap, mode="gaussian" if gaussian else "constant")
        probs = torch.softmax(logits.float(), dim=1)
        probs = torch.flip(probs, axes) if axes else probs
        total = probs if total is None else total + probs
    return total / len(flips)
