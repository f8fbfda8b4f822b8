"""Pseudo-labels of one self-training round (paper 001 section 2.3, paper 004 eq. 5): the teacher predicts each case
that lacks labels (inside a coarse model's organ box when one is given), the prediction is fused with the known
annotation class by class, and each result is written as a cache-format case with its provenance."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from unimos.data.io import write_nifti
from unimos.data.labels import candidate_table, foreground_box
from unimos.data.plan_spec import ModelPlan, Plan
from unimos.data.taxonomy import Taxonomy
from unimos.data.volume import Volume
from unimos.errors import UnimosError
from unimos.inference.cascade import check_cascade_pair
from unimos.inference.model import load_model
from unimos.inference.postprocess import largest_component_per_class
from unimos.inference.sliding import predict_probabilities
from unimos.preprocess.cache import CachedCase, write_cached_case
from unimos.preprocess.plan import plan_taxonomy
from unimos.utils.atomic import write_json_atomic
from unimos.utils.runtime import Runtime

# Where a fused voxel's label came from (provenance counts).
FROM_PSEUDO, FROM_ANNOTATION, FROM_FALLBACK = 0, 1, 2


ORIGIN_NAMES = {FROM_PSEUDO: "pseudo_label", FROM_ANNOTATION: "annotation", FROM_FALLBACK: "fallback"}


def fuse_labels(pseudo: np.ndarray, probabilities: np.ndarray, label: np.ndarray | None = None,
                region: np.ndarray | None = None, table: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class-wise label fusion (paper 004, eq. 5, within the candidate sets of docs/architecture.md)
    -> (fused, origin), uint8 (*S).

    The pseudo-label stands where it is a candidate (row `label` of `table` inside `region`, any class outside), so a
    known voxel keeps its annotation; elsewhere the most probable candidate under `probabilities` (C, *S) replaces it
    (the paper is silent there). Without `label` (unlabeled case) the pseudo-label stands everywhere.
    """
    pseudo = np.asarray(pseudo)
    if label is None:
        return pseudo.astype(np.uint8), np.full(pseudo.shape, FROM_PSEUDO, dtype=np.uint8)
    label = np.asarray(label).astype(np.intp)
    table = np.asarray(table, dtype=bool)
    inside = np.ones(pseudo.shape, dtype=bool) if region is None else np.asarray(region, dtype=bool)
    allowed = np.where(inside, table[label, pseudo.astype(np.intp)], True)
    known = inside & (table.sum(axis=1)[label] == 1)
    fused = pseudo.astype(np.uint8).copy()
    origin = np.full(pseudo.shape, FROM_PSEUDO, dtype=np.uint8)
    replace_at = ~allowed
    if replace_at.any():
        candidates = table[label[replace_at]]                      # (N, C)
        probs = np.moveaxis(np.asarray(probabilities), 0, -1)[replace_at]  # (N, C)
        fused[replace_at] = np.argmax(np.where(candidates, probs, -1.0), axis=1).astype(np.uint8)
        origin[replace_at] = FROM_FALLBACK
    origin[known] = FROM_ANNOTATION
    return fused, origin


def mean_confidence(probabilities: np.ndarray, fused: np.ndarray, origin: np.ndarray) -> float:
    """Mean max-softmax over the voxels the teacher decided as foreground (fused label > 0 taken from the
    pseudo-label, not from the annotation nor the fallback); 0.0 when there is none (nothing to learn from)."""
    decided = (np.asarray(fused) > 0) & (np.asarray(origin) == FROM_PSEUDO)
    if not decided.any():
        return 0.0
    return float(np.asarray(probabilities).max(axis=0)[decided].mean())


def needs_pseudo_label(case: CachedCase, fuse_partial: bool) -> bool:
    """Unlabeled cases always; with `fuse_partial`, labeled ones whose class is unknown somewhere (a candidate set
    larger than one, or voxels outside the annotated region: partial and sparse labels)."""
    if not case.meta["has_label"]:
        return True
    if not fuse_partial:
        return False
    table = case.candidate_table
    region = case.region()
    unknown_somewhere = region is not None and not np.all(region)
    return bool(unknown_somewhere or not np.array_equal(table, np.eye(len(table), dtype=bool)))


@dataclass
class PseudoRecord:
    """What became of one case in one round (the provenance JSON beside its NIfTI)."""

    case_id: str
    round: int
    teacher_checkpoint: str
    original_folder: str
    original_kind: str
    source: str
    mean_confidence: float
    kept: bool
    reason: str
    pseudo_folder: str | None
    nifti: str
    classes_from_annotation: list[str]
    classes_from_pseudo_label: list[str]
    classes_from_fallback: list[str]
    voxels: dict[str, dict[str, int]]
    largest_component: bool
    plan_hash: str
    grid: str = "the plan grid (RAS, target spacing, body crop) of the cache; affine from its meta.json"
    cascade_box: list[list[int]] | None = None  # with a coarse model: the voxel box [low, high) the teacher saw
    coarse_found: bool | None = None  # with a coarse model: False when it found nothing (the teacher saw it all)
    annotated_classes: list[str] = field(default_factory=list)  # what the case's own labels annotate


def _provenance_counts(fused: np.ndarray, origin: np.ndarray, names: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for code, origin_name in ORIGIN_NAMES.items():
        values, numbers = np.unique(fused[origin == code], return_counts=True)
        for value, number in zip(values, numbers):
            counts.setdefault(names[int(value)], {})[origin_name] = int(number)
    return counts


def write_pseudo_case(case: CachedCase, fused: np.ndarray, folder: Path, provenance: dict[str, Any],
                      taxonomy: Taxonomy | None = None, known: Sequence[str] | None = None) -> CachedCase:
    """A new cache-format case (kind "pseudo"): the original image, the fused label, region everywhere, annotating
    the classes `known` (None: all of them, a full label; with `taxonomy`). The original case is only read."""
    num_classes = len(case.candidate_table)
    if known is None or taxonomy is None:
        annotated, table = list(range(1, num_classes)), np.eye(num_classes, dtype=bool)
    else:
        annotated, table = sorted(taxonomy.index(n) for n in known), candidate_table(taxonomy, known)
    meta = {k: v for k, v in case.meta.items() if k != "input_signature"}
    meta.update({"kind": "pseudo", "has_label": True, "annotated_classes": annotated,
                 "candidate_table": table.astype(int).tolist(), "annotated_slices": None, "pseudo": provenance})
    arrays = {"label": np.ascontiguousarray(fused, dtype=np.uint8), "region": np.ones(fused.shape, dtype=bool)}
    return write_cached_case(folder, meta, arrays, image_from=case.folder)


Box = tuple[tuple[int, ...], tuple[int, ...]]


def scale_box(box: Box, from_spacing: Sequence[float], to_spacing: Sequence[float], shape: Sequence[int]) -> Box:
    """A voxel box [low, high) on a grid of `from_spacing` as the box covering the same extent on a grid of
    `to_spacing` with the same origin corner, clipped to `shape` (rounded outwards: nothing the box held is lost)."""
    low = tuple(max(0, int(np.floor(lo * f / t + 1e-6))) for lo, f, t in zip(box[0], from_spacing, to_spacing))
    high = tuple(min(int(n), int(np.ceil(hi * f / t - 1e-6)))
                 for hi, f, t, n in zip(box[1], from_spacing, to_spacing, shape))
    return low, high


def check_coarse_model(coarse: Any, teacher_plan: ModelPlan, path: str, slice_resize: int = 0) -> None:
    """Refuse a coarse model that cannot guide this run's pseudo-labels: other classes, another intensity
    normalisation (it reads the run's cached images, normalised by the run's plan), or a teacher that resizes whole
    slices (inside the box they would be magnified unlike in training, as `predict --coarse` refuses)."""
    where = "--strategy-option coarse"
    if slice_resize:
        raise UnimosError(where, "the teacher resizes whole slices (--slice-resize); inside the coarse box its slices "
                          "would be magnified unlike in training", "train without --slice-resize, or drop coarse")
    organs = [c.name for c in teacher_plan.classes]
    if list(coarse.class_names[1:]) != organs:
        raise UnimosError(where, f"{path} segments {list(coarse.class_names[1:])}, this run {organs}",
                          "train the coarse model on the same manifest (unimos plan --preset coarse, then train)")
    if coarse.plan.normalisation != teacher_plan.normalisation:
        raise UnimosError(where, f"{path} normalises intensities otherwise than this run's plan "
                          f"({_schemes(coarse.plan)} vs {_schemes(teacher_plan)})",
                          "plan the coarse model from the same manifest, so that both share its intensity statistics")


def _schemes(plan: ModelPlan) -> dict[str, dict[str, Any]]:
    """A plan's normalisation per modality as its JSON, to show in a message."""
    return {modality: scheme.to_json() for modality, scheme in plan.normalisation.items()}


def coarse_region(coarse: Any, image: np.ndarray, spacing_mm: Sequence[float], margin_mm: float,
                  precision: Any = None) -> Box | None:
    """Paper 001 (2.2-2.3): the organ box the coarse model finds in `image` (C, *S; the run's normalised cache image on
    a grid of `spacing_mm`), grown by `margin_mm` on that grid (as `predict --coarse`), as a voxel box of `image`;
    None when it finds nothing."""
    coarse_spacing = [float(s) for s in coarse.plan.target_spacing_mm]
    zoom = [f / c for f, c in zip(spacing_mm, coarse_spacing)]
    # grid_mode: voxel edges (not centres) line up, so that the zoom is exactly the spacing ratio `scale_box` assumes
    small = np.stack([ndimage.zoom(channel, zoom, order=1, grid_mode=True, mode="nearest")
                      for channel in image]).astype(np.float32)
    patch = coarse.meta.get("patch_size", coarse.plan.patch_size)
    probabilities = predict_probabilities(coarse.network, torch.from_numpy(small)[None].to(coarse.device), patch,
                                          0.5, precision=precision)
    labels = probabilities.argmax(1)[0].cpu().numpy()
    box = foreground_box(labels, [0] * labels.ndim)
    if box is None:
        return None
    low, high = scale_box(box, coarse_spacing, spacing_mm, image.shape[1:])
    margin = [math.ceil(margin_mm / s) for s in spacing_mm]
    return (tuple(max(0, lo - m) for lo, m in zip(low, margin)),
            tuple(min(int(n), hi + m) for hi, m, n in zip(high, margin, image.shape[1:])))


def pseudo_label_cases(cases: Sequence[CachedCase], checkpoint: Path, plan: Plan, round_dir: Path,
                       round_index: int, options: dict[str, Any], runtime: Runtime | None = None,
                       overlap: float = 0.5, project_index: Sequence[int] | None = None,
                       known_of: Callable[[CachedCase], list[str]] | None = None,
                       ) -> list[tuple[PseudoRecord, CachedCase | None]]:
    """Predict, clean, fuse and write every case; returns (record, pseudo case or None when dropped) per case.

    `runtime`: the device and network arithmetic of the teacher (the pipeline's, resolved once; None: the CPU in
    float32). A teacher of other classes than `plan`'s (the progressive pipeline's organ stage) gives
    `project_index` (teacher class k -> plan class index; the other classes get probability 0), and `known_of(case)`
    the classes each pseudo-labeled case counts as annotated (None: all of them, a complete label)."""
    runtime = runtime or Runtime(torch.device("cpu"), None)
    model = load_model(checkpoint, device=runtime.device)
    dtype = runtime.precision
    taxonomy = plan_taxonomy(plan)
    names = taxonomy.names
    to_project = np.arange(len(names)) if project_index is None else np.asarray(project_index, dtype=np.intp)
    patch = model.meta.get("patch_size", plan.patch_size)
    coarse = None
    if options.get("coarse"):
        coarse = load_model(options["coarse"], device=runtime.device)
        check_coarse_model(coarse, plan, options["coarse"])
        check_cascade_pair(coarse, model)  # classes, input channels, whole-slice resizing
    out: list[tuple[PseudoRecord, CachedCase | None]] = []
    for case in cases:
        array = np.array(case.image(), dtype=np.float32)
        box = None if coarse is None else coarse_region(coarse, array, plan.target_spacing_mm,
                                                        float(options["coarse_margin_mm"]), dtype)
        inside = (slice(None),) + (() if box is None else tuple(slice(lo, hi) for lo, hi in zip(*box)))
        image = torch.from_numpy(np.ascontiguousarray(array[inside]))[None].to(model.device)
        probabilities = np.zeros((len(names), *array.shape[1:]), dtype=np.float32)
        probabilities[0] = 1.0  # outside the cascade's box: background, as `predict --coarse`
        probabilities[(to_project, *inside[1:])] = predict_probabilities(
            model.network, image, patch, overlap, precision=dtype)[0].float().cpu().numpy()
        pseudo = probabilities.argmax(axis=0).astype(np.uint8)
        if options["largest_component"]:
            pseudo = largest_component_per_class(pseudo, taxonomy)
        label = case.label() if case.meta["has_label"] else None
        fused, origin = fuse_labels(pseudo, probabilities, None if label is None else np.asarray(label),
                                    None if label is None else np.asarray(case.region()), case.candidate_table)
        confidence = mean_confidence(probabilities, fused, origin)
        kept = confidence >= float(options["min_confidence"])
        reason = "kept" if kept else f"mean confidence {confidence:.3f} < min_confidence {options['min_confidence']}"
        nifti = round_dir / "pseudo_labels" / f"{case.case_id}.nii.gz"
        folder = round_dir / "pseudo_cache" / case.case_id
        by_origin = {name: sorted({names[int(v)] for v in np.unique(fused[origin == code])})
                     for code, name in ORIGIN_NAMES.items()}
        record = PseudoRecord(
            case.case_id, round_index, str(checkpoint), str(case.folder), str(case.meta.get("kind")),
            str(case.meta.get("source")), confidence, kept, reason, str(folder) if kept else None, str(nifti),
            by_origin["annotation"], by_origin["pseudo_label"], by_origin["fallback"],
            _provenance_counts(fused, origin, names), bool(options["largest_component"]), str(plan.hash),
            cascade_box=(None if coarse is None
                         else [list(b) for b in (box or ((0,) * (array.ndim - 1), array.shape[1:]))]),
            coarse_found=None if coarse is None else box is not None,
            annotated_classes=[names[int(i)] for i in case.meta.get("annotated_classes", [])])
        write_nifti(Volume(fused, np.asarray(case.meta["affine"], dtype=np.float64)), nifti, dtype=np.uint8)
        write_json_atomic(nifti.parent / f"{case.case_id}.json", asdict(record))
        pseudo_case = None
        if kept:
            provenance = {k: getattr(record, k) for k in ("round", "teacher_checkpoint", "original_folder",
                                                          "original_kind", "mean_confidence")}
            pseudo_case = write_pseudo_case(case, fused, folder, provenance, taxonomy,
                                            None if known_of is None else known_of(case))
        out.append((record, pseudo_case))
    write_json_atomic(round_dir / "pseudo_labels" / "summary.json",
                      {"round": round_index, "teacher_checkpoint": str(checkpoint),
                       "kept": [r.case_id for r, c in out if c is not None],
                       "dropped": [r.case_id for r, c in out if c is None],
                       "mean_confidence": {r.case_id: r.mean_confidence for r, _ in out}})
    return out
