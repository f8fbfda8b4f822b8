"""Intensity normalisation per modality and the body mask used to crop and to sample intensities."""

from __future__ import annotations

import numpy as np

from unimos.data.plan_spec import NormalisationSpec

CT_BODY_THRESHOLD_HU = -500.0


def body_mask(image: np.ndarray, modality: str) -> np.ndarray:
    """Voxels inside the body: CT above -500 HU, other modalities above 10% of the 99th percentile."""
    if modality == "CT":
        return image > CT_BODY_THRESHOLD_HU
    return image > 0.1 * float(np.percentile(image, 99))


def body_bbox(mask: np.ndarray, margin: int = 2) -> tuple[tuple[int, int], ...]:
    """Bounding box (start, stop) per axis of a mask plus a margin; the whole grid when the mask is empty."""
    if not mask.any():
        return tuple((0, n) for n in mask.shape)
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append((max(0, int(hits[0]) - margin), min(mask.shape[axis], int(hits[-1]) + 1 + margin)))
    return tuple(box)


def normalise(image: np.ndarray, modality: str, scheme: NormalisationSpec) -> np.ndarray:
    """Apply the plan's scheme: `ct_clip_zscore` (dataset-wide clip + z-score) or `zscore_per_volume` (MR)."""
    if scheme.scheme == "ct_clip_zscore":
        if scheme.clip is None or scheme.mean is None or scheme.std is None:
            raise ValueError("a ct_clip_zscore normalisation needs its clip, mean and std")
        low, high = scheme.clip
        out = np.clip(image, low, high, dtype=np.float32)
        out -= np.float32(scheme.mean)
        out /= np.float32(max(scheme.std, 1e-6))
        return out
    if scheme.scheme == "zscore_per_volume":
        inside = body_mask(image, modality)
        values = image[inside] if inside.any() else image.ravel()
        mean, std = float(values.mean()), float(values.std())
        return ((image - mean) / max(std, 1e-6)).astype(np.float32)
    raise ValueError(f"unknown normalisation scheme {scheme.scheme!r}")
