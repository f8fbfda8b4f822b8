"""The lesion stage at prediction (pipelines/lesion_crops.py trains it): the organ model's labels give a crop
around every organ that has lesion classes; the network of that organ's group labels the crop, and its lesions
replace the organ model's there.

A lesion stage is a folder: RUN/lesion_stage.json names its groups (organs with the same lesion classes, e.g. both
kidneys for kidney_tumor) and each group's checkpoint. Every network works on the organ model's plan grid (same
spacing and normalisation, checked by `check_lesion_pair`), so the stage adds no resampling: it runs on the
prepared image the organ model saw, plus the organ's mask as one more channel (`organ_mask_channel`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import torch
from scipy import ndimage

from unimos.data.catalogue import SIDED_PAIRS
from unimos.data.taxonomy import Taxonomy
from unimos.errors import UnimosError
from unimos.inference.model import LoadedModel, load_model
from unimos.inference.postprocess import surrounding_label
from unimos.inference.sliding import predict_probabilities

DEFAULT_LESION_MARGIN_MM = 15.0
STAGE_FILE = "lesion_stage.json"


@dataclass
class LesionGroup:
    """One network of a lesion stage: the organs it crops and, per organ, its lesion classes in slot order."""

    name: str
    model: LoadedModel
    organs: list[str]
    lesions: list[str]


@dataclass
class LesionStage:
    """A trained lesion stage: its groups and the crop margin it was trained with (mm)."""

    groups: list[LesionGroup]
    margin_mm: float


def lesion_groups(taxonomy: Taxonomy) -> dict[str, tuple[list[int], list[int]]]:
    """Group name -> (parent organs, their lesion classes in slot order), project indices: organs with the same
    lesion classes share one network; the name is the lesion classes joined by '+'."""
    by_lesions: dict[tuple[int, ...], list[int]] = {}
    for parent, own in parents_with_lesions(taxonomy).items():
        by_lesions.setdefault(tuple(own), []).append(parent)
    return {"+".join(taxonomy.names[i] for i in own): (parents, list(own)) for own, parents in by_lesions.items()}


def load_lesion_stage(folder: str | Path, device: torch.device | str = "cpu") -> LesionStage:
    """A lesion stage's networks from its run folder (or its lesion_stage.json)."""
    path = Path(folder)
    path = path if path.name == STAGE_FILE else path / STAGE_FILE
    if not path.is_file():
        raise UnimosError(path.parent, f"holds no {STAGE_FILE}: it is not a lesion stage's run folder",
                          "give the folder `unimos train --strategy lesion_crops` wrote (its --out)")
    record = json.loads(path.read_text())
    groups = [LesionGroup(name, load_model(path.parent / group["checkpoint"], device), list(group["organs"]),
                          list(group["lesions"])) for name, group in record["groups"].items()]
    return LesionStage(groups, float(record["margin_mm"]))


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


def box_slices(box: tuple[Sequence[int], Sequence[int]]) -> tuple[slice, ...]:
    """The index of a (low, high exclusive) voxel box."""
    return tuple(slice(lo, hi) for lo, hi in zip(*box))


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


def check_lesion_pair(organ_model: Any, stage: LesionStage) -> None:
    """Every group of the stage must crop organs of the organ model for lesion classes the organ model has inside
    them, and read its grid and channels plus the organ mask; every mismatch is named at once."""
    taxonomy: Taxonomy = organ_model.taxonomy
    problems = []
    for group in stage.groups:
        for organ in group.organs:
            if organ not in taxonomy.names:
                problems.append(f"group '{group.name}' crops '{organ}', which the organ model does not segment")
                continue
            for lesion in group.lesions:
                if lesion not in taxonomy.names or taxonomy.index(organ) not in taxonomy.parents_of(
                        taxonomy.index(lesion)):
                    problems.append(f"group '{group.name}' finds '{lesion}', not a lesion class of the organ "
                                    f"model's '{organ}'")
        model = group.model
        if int(model.meta["in_channels"]) != int(organ_model.meta["in_channels"]) + 1:
            problems.append(f"group '{group.name}' reads {model.meta['in_channels']} channels, not the organ "
                            f"model's {organ_model.meta['in_channels']} plus the organ mask")
        if list(model.plan.target_spacing_mm) != list(organ_model.plan.target_spacing_mm):
            problems.append(f"group '{group.name}' works at {model.plan.target_spacing_mm} mm, the organ model at "
                            f"{organ_model.plan.target_spacing_mm} mm")
        if model.plan.normalisation != organ_model.plan.normalisation:
            problems.append(f"group '{group.name}' normalises intensities differently")
    if problems:
        raise UnimosError("--lesion-model", "does not fit the organ model: " + "; ".join(problems),
                          "train the lesion stage on the organ model's project and plan "
                          "(`unimos train --strategy lesion_crops`)")


@dataclass(frozen=True)
class Midline:
    """The body's left-right centre on a grid: its world x (mm, RAS+: the patient's right has larger x) and the
    grid's affine."""

    x_mm: float
    affine: np.ndarray

    def right_side(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean grid of the voxels on the patient's right of the midline."""
        axes = np.ogrid[tuple(slice(0, int(n)) for n in shape)]
        row = np.asarray(self.affine, dtype=np.float64)[0]
        world_x = row[3] + sum(row[a] * axes[a] for a in range(len(shape)))
        return np.broadcast_to(world_x > self.x_mm, tuple(int(n) for n in shape))


def sided_parents(parents: Sequence[int], taxonomy: Taxonomy) -> tuple[int, int] | None:
    """(right, left) project indices when `parents` are the two members of a sided pair (kidney_right and
    kidney_left), else None."""
    names = sorted(taxonomy.names[i] for i in parents)
    for right, left in SIDED_PAIRS.values():
        if names == sorted((right, left)):
            return taxonomy.index(right), taxonomy.index(left)
    return None


def has_sided_lesions(taxonomy: Taxonomy) -> bool:
    """Whether a lesion class of `taxonomy` lies in either organ of a sided pair (kidney_tumor): only then does the
    lesion stage need the body's midline."""
    return any(sided_parents(taxonomy.parents_of(i), taxonomy) is not None
               for i in range(1, taxonomy.num_classes) if len(taxonomy.parents_of(i)) == 2)


def lesions_read_as_organs(labels: np.ndarray, taxonomy: Taxonomy, midline: Midline | None = None) -> np.ndarray:
    """The organ model's lesion labels given back to their organ, so that the lesion stage alone decides lesions: a
    lesion class with one parent becomes it. A lesion class of the two organs of a sided pair (a kidney tumour)
    takes the organ on its body side when the `midline` is known, the rule that splits a merged kidney label
    (data/labels.split_sided): a partially trained organ model may call a whole kidney its tumour, and on a 3 mm
    grid that kidney can touch a tumour piece of the other one. Otherwise each piece of a lesion class with several
    parents takes the parent on most of its shell, and stays a lesion where it touches none of them."""
    out = np.array(labels, copy=True)
    for index in range(1, taxonomy.num_classes):
        parents = taxonomy.parents_of(index)
        mask = labels == index
        if not parents or not mask.any():
            continue
        if len(parents) == 1:
            out[mask] = parents[0]
            continue
        pair = sided_parents(parents, taxonomy)
        if pair is not None and midline is not None:
            right = midline.right_side(labels.shape)
            out[mask & right] = pair[0]
            out[mask & ~right] = pair[1]
            continue
        around = np.where(np.isin(labels, parents), labels, 0)
        components, count = cc3d.connected_components(mask, connectivity=26, return_N=True)
        boxes = cc3d.statistics(components)["bounding_boxes"]
        for piece in range(1, count + 1):
            parent = surrounding_label(around, components, piece, boxes[piece], foreground_only=True)
            if parent:
                out[components == piece] = parent
    return out


def add_lesions(labels: np.ndarray, image: torch.Tensor, organ_taxonomy: Taxonomy, stage: LesionStage,
                spacing_mm: Any, options: Any, precision: torch.dtype | None,
                midline: Midline | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """`labels` (organ model's classes, plan grid) with the stage's lesions written into each organ's crop ->
    (labels, {organ: crop box}). `image` is the prepared (1, C, *spatial) input on the same grid.

    The organ model's own lesion labels are first read as their organs (`lesions_read_as_organs`, by body side
    about `midline` for a sided pair's lesion); inside each crop a voxel of the organ (its mask channel: the organ
    with its enclosed holes) that the group's network puts in lesion slot j (class 1 + j; class 1 is the organ)
    becomes the j-th lesion class, unless the organ model gave it to another organ. Lesions are written inside the
    organ only: on the development demo collection every lesion voxel the networks found outside it was a false
    positive (bench/README.md, "The demo's lesions: learned from organ crops")."""
    labels = lesions_read_as_organs(labels, organ_taxonomy, midline)
    out = labels.copy()
    crops: dict[str, Any] = {}
    for group in stage.groups:
        patch = group.model.meta.get("patch_size", group.model.plan.patch_size)
        own = [organ_taxonomy.index(n) for n in group.lesions]
        for name in group.organs:
            parent = organ_taxonomy.index(name)
            organ = labels == parent
            box = organ_crop_box(organ, spacing_mm, stage.margin_mm, patch)
            if box is None:
                continue
            cut = box_slices(box)
            inside = organ_mask_channel(organ[cut])
            mask = torch.from_numpy(inside)[None, None].to(image.device, image.dtype)
            crop = torch.cat([image[(slice(None), slice(None), *cut)], mask], dim=1)
            probs = predict_probabilities(group.model.network, crop, patch, options.overlap, options.mirror,
                                          options.sw_batch_size, precision=precision)
            found = probs.argmax(1)[0].cpu().numpy()
            region = out[cut]
            writable = (inside > 0) & np.isin(labels[cut], [0, parent, *own])  # never another organ
            for slot, index in enumerate(own, start=2):
                region[writable & (found == slot)] = index
            crops[name] = [list(box[0]), list(box[1])]
    return out, crops
