"""The preprocessing cache: per case, memory-mappable arrays on the plan's grid, keyed by the plan.

Layout: CACHE/<plan cache_key>/<case_id>/{image.npy (C,X,Y,Z) float32, label.npy uint8, region.npy bool,
meta.json}. Each case folder is written under a temporary name and renamed, so a killed run never leaves a
half case; a case whose inputs and plan did not change is not redone.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unimos.data.io import read_volume
from unimos.data.labels import candidate_table, to_project_labels
from unimos.data.manifest import Case, Manifest
from unimos.data.plan_spec import Plan
from unimos.data.taxonomy import Taxonomy
from unimos.errors import PlanError
from unimos.preprocess.plan import plan_taxonomy
from unimos.preprocess.prepare import prepare_image
from unimos.preprocess.resample import (
    map_annotated_slices,
    reorient,
    reorient_slices,
    resample_label_linear,
    resample_nearest,
)
from unimos.utils.atomic import atomic_path, is_partial, write_json_atomic

CACHE_FORMAT = 1


@dataclass(frozen=True)
class CachedCase:
    """A preprocessed case opened from the cache (arrays memory-mapped, read-only)."""

    folder: Path
    meta: dict[str, Any]

    @property
    def case_id(self) -> str:
        return self.meta["case_id"]

    def image(self) -> np.ndarray:
        return np.load(self.folder / "image.npy", mmap_mode="r", allow_pickle=False)

    def label(self) -> np.ndarray | None:
        path = self.folder / "label.npy"
        return np.load(path, mmap_mode="r", allow_pickle=False) if path.exists() else None

    def region(self) -> np.ndarray | None:
        path = self.folder / "region.npy"
        return np.load(path, mmap_mode="r", allow_pickle=False) if path.exists() else None

    @property
    def candidate_table(self) -> np.ndarray:
        return np.asarray(self.meta["candidate_table"], dtype=bool)


def input_signature(case: Case) -> str:
    """Hash of what the cached arrays depend on besides the plan: input files (size, mtime) and annotation."""
    files = list(case.image_paths) + ([case.label_path] if case.label_path else [])
    parts: list[Any] = []
    for path in files:
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    parts.append([case.source.name, case.kind, case.modality, case.split, sorted(case.annotated_classes),
                  sorted((k, v.kind, v.classes) for k, v in case.source.label_map.items()),
                  sorted((a, list(v)) for a, v in (case.annotated_slices or {}).items())])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def preprocess_arrays(case: Case, plan: Plan, taxonomy: Taxonomy) -> dict[str, Any]:
    """Read, reorient to RAS, resample, crop to the body and normalise one case; return arrays and metadata."""
    channels = [read_volume(p, kind="image") for p in case.image_paths]
    image, geometry = prepare_image(channels, case.modality, plan)
    new_shape = geometry.resampled_shape
    ornt = geometry.ras_orientation
    crop = geometry.crop

    out: dict[str, Any] = {"image": image}
    annotated_target: dict[int, list[int]] | None = None
    if case.label_path is not None:
        label_volume = read_volume(case.label_path, kind="label")
        labels, region = to_project_labels(case, taxonomy, label_volume, channels[0])
        labels_ras = reorient(label_volume.with_array(labels), ornt)
        region_ras = reorient(label_volume.with_array(region), ornt)
        pins = None
        if case.annotated_slices is not None:
            slices = reorient_slices(case.annotated_slices, ornt, label_volume.shape)
            pins = map_annotated_slices(slices, labels_ras.shape, new_shape)
            annotated_target = {axis: sorted(p) for axis, p in pins.items()}
        if pins is None and plan.label_resampling == "linear_argmax":
            label_arr = resample_label_linear(labels_ras, new_shape).array
        else:
            label_arr = resample_nearest(labels_ras, new_shape, pins).array
        region_arr = resample_nearest(region_ras, new_shape, pins).array
        if annotated_target is not None:
            # Only the pinned target slices carry an annotated slice; nothing else is annotated.
            on_slices = np.zeros(new_shape, dtype=bool)
            for axis, targets in annotated_target.items():
                index: list[Any] = [slice(None)] * 3
                index[axis] = targets
                on_slices[tuple(index)] = True
            region_arr &= on_slices
        label_arr = np.where(region_arr, label_arr, 0).astype(np.uint8)
        out["label"] = np.ascontiguousarray(label_arr[crop])
        out["region"] = np.ascontiguousarray(region_arr[crop])

    out["meta"] = {
        "cache_format": CACHE_FORMAT,
        "case_id": case.case_id,
        "source": case.source.name,
        "modality": case.modality,
        "kind": case.kind,
        "split": case.split,
        "has_label": case.label_path is not None,
        "annotated_classes": sorted(taxonomy.index(c) for c in case.annotated_classes),
        "candidate_table": candidate_table(taxonomy, case.annotated_classes).astype(int).tolist(),
        "annotated_slices": annotated_target,
        "original_shape": list(geometry.original_shape),
        "original_affine": geometry.original_affine.tolist(),
        "ras_orientation": ornt.tolist(),
        "resampled_shape": list(new_shape),
        "crop_box": [list(b) for b in geometry.crop_box],
        "affine": geometry.cropped_affine.tolist(),
        "shape": list(image.shape[1:]),
    }
    return out


def cache_root(cache_dir: str | Path, plan: Plan) -> Path:
    """The folder of a plan's cached cases: named by its cache key (set by `with_hashes`, so by `load_plan`)."""
    if plan.cache_key is None:
        raise PlanError("plan", "has no cache key", "read it with load_plan (or pass it through with_hashes)")
    return Path(cache_dir) / plan.cache_key


def case_folder(cache_dir: Path, plan: Plan, case_id: str) -> Path:
    return cache_root(cache_dir, plan) / case_id


def is_cached(case: Case, plan: Plan, cache_dir: Path) -> bool:
    meta_path = case_folder(cache_dir, plan, case.case_id) / "meta.json"
    if not meta_path.exists():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("input_signature") == input_signature(case) and meta.get("cache_format") == CACHE_FORMAT


def preprocess_case(case: Case, plan: Plan, cache_dir: Path) -> Path:
    """Preprocess one case into its cache folder (atomically: temporary folder, then rename)."""
    torch_threads_for_worker()
    final = case_folder(cache_dir, plan, case.case_id)
    result = preprocess_arrays(case, plan, plan_taxonomy(plan))
    result["meta"]["input_signature"] = input_signature(case)
    result["meta"]["plan_cache_key"] = plan.cache_key
    write_cached_case(final, result["meta"], {n: result[n] for n in ("image", "label", "region") if n in result})
    return final


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard link (no extra disk; a cache case is never written in place, only replaced by rename), else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_cached_case(folder: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                      image_from: Path | None = None) -> CachedCase:
    """The one writer of a cache case: NAME.npy per array (image, label, region) and meta.json, assembled in a
    temporary folder and renamed into place, replacing an earlier case. `image_from`: a case folder whose image.npy
    the new case shares (hard link, copy where links fail) instead of an `image` array, as pseudo-labeled cases do."""
    folder = Path(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        if image_from is not None:
            _link_or_copy(Path(image_from) / "image.npy", tmp / "image.npy")
        for name in ("image", "label", "region"):
            if name in arrays:
                np.save(tmp / f"{name}.npy", arrays[name], allow_pickle=False)
        write_json_atomic(tmp / "meta.json", meta)
        if folder.exists():
            shutil.rmtree(folder)
    return CachedCase(folder, meta)


def torch_threads_for_worker() -> None:
    """One torch thread per worker process: parallelism comes from the processes."""
    if os.environ.get("UNIMOS_WORKER") == "1":
        import torch

        torch.set_num_threads(1)


def _worker_init() -> None:
    os.environ["UNIMOS_WORKER"] = "1"


def preprocess_manifest(manifest: Manifest, plan: Plan, cache_dir: str | Path, workers: int = 2,
                        progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Preprocess every case not yet cached; returns (cases done now, cases already cached)."""
    cache_dir = Path(cache_dir)
    root = cache_root(cache_dir, plan)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.iterdir():
        if is_partial(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
    todo = [c for c in manifest.cases if not is_cached(c, plan, cache_dir)]
    skipped = len(manifest.cases) - len(todo)
    write_json_atomic(root / "plan.json", plan.to_json())
    if not todo:
        return 0, skipped
    if workers <= 1 or len(todo) == 1:
        for i, case in enumerate(todo, start=1):
            preprocess_case(case, plan, cache_dir)
            if progress:
                progress(i, len(todo))
        return len(todo), skipped
    # spawn, not fork: a forked child of a process that already ran OpenMP work can hang.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, mp_context=context) as pool:
        futures = [pool.submit(preprocess_case, case, plan, cache_dir) for case in todo]
        for i, future in enumerate(futures, start=1):
            future.result()
            if progress:
                progress(i, len(todo))
    return len(todo), skipped


def open_cache(cache_dir: str | Path, plan: Plan) -> list[CachedCase]:
    """All cached cases of a plan, sorted by case id."""
    root = cache_root(cache_dir, plan)
    cases = []
    for folder in sorted(root.iterdir()) if root.exists() else []:
        meta_path = folder / "meta.json"
        if folder.is_dir() and not is_partial(folder) and meta_path.exists():
            cases.append(CachedCase(folder, json.loads(meta_path.read_text())))
    return cases
