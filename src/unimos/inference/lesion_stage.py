"""The lesion stage at prediction (pipelines/lesion_crops.py trains it): the organ model's labels give a crop
around every organ that is the parent of one of the lesion model's classes; the lesion model labels the crop, and
its labels of that organ's lesions replace the organ model's there.

Both models work on the organ model's plan grid (same spacing and normalisation, checked by `check_lesion_pair`),
so the lesion stage adds no resampling: it runs on the prepared image the organ model saw, plus the organ's mask
as one more channel (`organ_mask_channel`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

from unimos.data.taxonomy import Taxonomy
from unimos.errors import UnimosError
from unimos.inference.sliding import predict_probabilities

DEFAULT_LESION_MARGIN_MM = 15.0


def organ_crop_box(organ: np.ndarray, spacing_mm: Any, margin_mm: float,
                   min_size: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Voxel box of a boolean organ mask grown by `margin_mm`, widened to at least `min_size` where the volume
    allows; None for an empty mask. The training crops' rule (pipelines/lesion_crops.py uses this function)."""
    axes = [np.flatnonzero(np.any(organ, axis=tuple(a for a in range(organ.ndim) if a != axis)))
            for axis in range(organ.ndim)]
    if any(len(hits) == 0 for hits in axes):
        return None
    low, high = [], []
    for axis, hits in enumerate(axes):
        size, want = organ.shape[axis], int(min_size[axis])
        margin = int(np.ceil(margin_mm / float(spacing_mm[axis])))
        lo, hi = max(0, int(hits[0]) - margin), min(size, int(hits[-1]) + 1 + margin)
        if hi - lo < want:  # widen about the centre, then shift back inside the volume
            lo = max(0, (lo + hi - want) // 2)
            hi = min(size, lo + want)
            lo = max(0, hi - want)
        low.append(lo)
        high.append(hi)
    return tuple(low), tuple(high)


def organ_mask_channel(organ: np.ndarray) -> np.ndarray:
    """The lesion model's extra input channel: the organ (with its lesions) as 1.0, its enclosed holes filled, so
    that a lesion the organ model called background inside the organ reads as organ, as the training crops do."""
    return ndimage.binary_fill_holes(np.asarray(organ, dtype=bool)).astype(np.float32)


def parents_with_lesions(taxonomy: Taxonomy) -> dict[int, list[int]]:
    """Parent organ index -> its lesion classes (project indices, project order): lesion slot j of that organ's
    crops is the j-th (pipelines/lesion_crops.py)."""
    out: dict[int, list[int]] = {}
    for index in range(1, taxonomy.num_classes):
        for parent in taxonomy.parents_of(index):
            out.setdefault(parent, []).append(index)
    return out


def check_lesion_pair(organ_model: Any, lesion_model: Any) -> None:
    """The lesion model must have a slot for every lesion class of an organ of the organ model and read its grid
    and channels plus the organ mask; every mismatch is named at once."""
    own = parents_with_lesions(organ_model.taxonomy)
    slots = len(lesion_model.class_names) - 2
    problems = []
    if not own:
        problems.append("the organ model has no lesion class (a class inside an organ)")
    most = max((len(v) for v in own.values()), default=0)
    names = lesion_model.class_names[1:]
    if slots < most or names[:1] != ["organ"] or not all(n.startswith("lesion") for n in names[1:]):
        problems.append(f"it is not a lesion-stage model with {most} lesion slot(s) (its classes: "
                        f"{lesion_model.class_names[1:]})")
    if int(lesion_model.meta["in_channels"]) != int(organ_model.meta["in_channels"]) + 1:
        problems.append(f"it reads {lesion_model.meta['in_channels']} channels, not the organ model's "
                        f"{organ_model.meta['in_channels']} plus the organ mask")
    if list(lesion_model.plan.target_spacing_mm) != list(organ_model.plan.target_spacing_mm):
        problems.append(f"its grid ({lesion_model.plan.target_spacing_mm} mm) is not the organ model's "
                        f"({organ_model.plan.target_spacing_mm} mm)")
    if lesion_model.plan.normalisation != organ_model.plan.normalisation:
        problems.append("it normalises intensities differently")
    if problems:
        raise UnimosError("--lesion-model", "does not fit the organ model: " + "; ".join(problems),
                          "train the lesion stage on the organ model's project and plan "
                          "(`unimos train --strategy lesion_crops`)")


def add_lesions(labels: np.ndarray, image: torch.Tensor, organ_taxonomy: Taxonomy, lesion_model: Any,
                spacing_mm: Any, options: Any, precision: torch.dtype | None,
                margin_mm: float = DEFAULT_LESION_MARGIN_MM) -> tuple[np.ndarray, dict[str, Any]]:
    """`labels` (organ model's classes, plan grid) with the lesion model's lesions written into each parent organ's
    crop -> (labels, {organ: crop box}). `image` is the prepared (1, C, *spatial) input on the same grid.

    Inside a crop, a voxel the lesion model puts in lesion slot j becomes the organ's j-th lesion class unless the organ
    model gave it to another organ; a voxel the organ model called one of the organ's lesions and the lesion model
    does not is the organ again."""
    out = np.array(labels, copy=True)
    slots = len(lesion_model.class_names) - 2  # background, organ, then the lesion slots
    patch = lesion_model.meta.get("patch_size", lesion_model.plan.patch_size)
    crops: dict[str, Any] = {}
    for parent, own in sorted(parents_with_lesions(organ_taxonomy).items()):
        own = own[:slots]
        organ = np.isin(labels, [parent, *own])
        box = organ_crop_box(organ, spacing_mm, margin_mm, patch)
        if box is None:
            continue
        cut = tuple(slice(lo, hi) for lo, hi in zip(*box))
        mask = torch.from_numpy(organ_mask_channel(organ[cut]))[None, None].to(image.device, image.dtype)
        crop = torch.cat([image[(slice(None), slice(None), *cut)], mask], dim=1)
        probs = predict_probabilities(lesion_model.network, crop, patch, options.overlap, options.mirror,
                                      options.sw_batch_size, precision=precision)
        found = probs.argmax(1)[0].cpu().numpy()
        region = out[cut]
        writable = np.isin(region, [0, parent, *own])
        region[writable & np.isin(region, own) & (found < 2)] = parent
        for slot, index in enumerate(own, start=2):
            region[writable & (found == slot)] = index
        crops[organ_taxonomy.names[parent]] = [list(box[0]), list(box[1])]
    return out, crops
