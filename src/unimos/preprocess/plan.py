"""The plan: a readable JSON file derived from the fingerprint (spacing, patch, normalisation, network size).

Like nnU-Net's plans, a user may read and edit it; its hash names the cache and is checked by checkpoints. In code
it is a typed `Plan` (data/plan_spec.py), made by `make_plan` or read by `load_plan` and checked there, once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from unimos.data.plan_spec import HASH_KEYS, PLAN_VERSION, PREPROCESSING_KEYS, Plan, checked
from unimos.data.taxonomy import ClassDef, Taxonomy
from unimos.errors import PlanError
from unimos.utils.atomic import write_json_atomic

Preset = Literal["3mm", "3mm-small", "fine", "coarse"]
PRESETS: dict[str, dict[str, Any]] = {
    "3mm": {"max_patch_voxels": 96 ** 3, "max_patch": 96, "base_features": 16, "max_features": 256},
    # The demo's budget on 2 CPU cores: 3 mm, smaller patches and a narrower network.
    "3mm-small": {"max_patch_voxels": 64 * 48 * 48, "max_patch": 64, "base_features": 16, "max_features": 128},
    "fine": {"max_patch_voxels": 128 ** 3, "max_patch": 192, "base_features": 32, "max_features": 320},
    # The first stage of a coarse-to-fine cascade (paper 001): 6 mm, whole field of view, a small network that
    # only has to find where the organs are (inference/cascade.py).
    "coarse": {"max_patch_voxels": 48 ** 3, "max_patch": 48, "base_features": 8, "max_features": 64},
}
COARSE_SPACING_MM = 6.0
MIN_BOTTLENECK = 4
MAX_DOWNSAMPLINGS = 5


def target_spacing(fingerprint: dict[str, Any], preset: Preset) -> list[float]:
    """3 mm isotropic for the fast presets, 6 mm for `coarse`; the median spacing for `fine`, with nnU-Net's
    anisotropy rule."""
    if preset.startswith("3mm"):
        return [3.0, 3.0, 3.0]
    if preset == "coarse":
        return [COARSE_SPACING_MM] * 3
    median = np.asarray(fingerprint["median_spacing_mm"], dtype=float)
    spacing = median.copy()
    worst = int(np.argmax(median))
    others = [a for a in range(3) if a != worst]
    if median[worst] > 3 * max(median[others]):
        # nnU-Net's rule for a very coarse axis: its 10th percentile, but no finer than the other axes.
        spacing[worst] = max(float(fingerprint["spacing_percentile_10_mm"][worst]), float(max(median[others])))
    return [round(float(s), 4) for s in spacing]


def patch_and_network(extent_mm: list[float], spacing: list[float], preset: Preset) -> tuple[list[int], dict[str, Any]]:
    """Patch size (the median case at target spacing, within the preset's voxel budget) and a U-Net to fit it."""
    rules = PRESETS[preset]
    shape = [max(16, int(round(e / s))) for e, s in zip(extent_mm, spacing)]
    shape = [min(n, rules["max_patch"]) for n in shape]
    while int(np.prod(shape)) > rules["max_patch_voxels"]:
        largest = int(np.argmax(shape))
        shape[largest] = int(shape[largest] * 0.9)
    strides: list[list[int]] = [[1, 1, 1]]
    size = list(shape)
    for _ in range(MAX_DOWNSAMPLINGS):
        step = [2 if n // 2 >= MIN_BOTTLENECK else 1 for n in size]
        if step == [1, 1, 1]:
            break
        strides.append(step)
        size = [n // s for n, s in zip(size, step)]
    multiple = np.prod(np.array(strides), axis=0)
    patch = [max(int(m), int(n // m * m)) for n, m in zip(shape, multiple)]
    filters = [min(rules["base_features"] * 2 ** i, rules["max_features"]) for i in range(len(strides))]
    network = {
        "name": "dynunet",
        "spatial_dims": 3,
        "kernel_size": [[3, 3, 3]] * len(strides),
        "strides": strides,
        "filters": filters,
        "deep_supervision": False,
    }
    return patch, network


def make_plan(fingerprint: dict[str, Any], taxonomy: Taxonomy, preset: Preset = "3mm") -> Plan:
    """Derive a plan from a fingerprint; the result includes its own hash."""
    if preset not in PRESETS:
        raise PlanError("plan", f"unknown preset '{preset}'", f"use one of {sorted(PRESETS)}")
    if not fingerprint["modalities"]:
        raise PlanError("plan", "has no modality to normalise: the fingerprint holds no training case",
                        "give the manifest cases outside the test split")
    spacing = target_spacing(fingerprint, preset)
    patch, network = patch_and_network(fingerprint["median_extent_mm"], spacing, preset)
    payload = {
        "unimos_plan_version": PLAN_VERSION,
        "preset": preset,
        "target_spacing_mm": spacing,
        "patch_size": patch,
        "batch_size": 2,
        "normalisation": normalisation_schemes(fingerprint),
        "crop_to_body": True,
        "label_resampling": "nearest",
        "network": network,
        "classes": taxonomy.to_json(),
        "fingerprint": {k: v for k, v in fingerprint.items() if k != "cases"},
    }
    return with_hashes(plan_from_json(payload, "the derived plan"))


def normalisation_schemes(fingerprint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per modality: CT clipped to its 0.5-99.5th percentiles and z-scored with the dataset's statistics; others
    z-scored per volume."""
    schemes: dict[str, dict[str, Any]] = {}
    for modality, stats in fingerprint["modalities"].items():
        if modality == "CT":
            schemes[modality] = {"scheme": "ct_clip_zscore",
                                 "clip": [round(stats["percentile_00_5"], 2), round(stats["percentile_99_5"], 2)],
                                 "mean": round(stats["mean"], 4), "std": round(stats["std"], 4)}
        else:
            schemes[modality] = {"scheme": "zscore_per_volume"}
    return schemes


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def json_hashes(payload: dict[str, Any]) -> dict[str, str]:
    """`cache_key` (of the preprocessing fields) and `hash` (of every field) of a plan's JSON, its own hashes
    left out: what names a plan's cache and what a checkpoint checks."""
    body = {k: v for k, v in payload.items() if k not in HASH_KEYS}
    return {"cache_key": _digest({k: body.get(k) for k in PREPROCESSING_KEYS}), "hash": _digest(body)}


def with_hashes(plan: Plan) -> Plan:
    """The plan with `cache_key` and `hash` recomputed from its JSON (after an edit, they follow it)."""
    return plan.model_copy(update=json_hashes(plan.to_json()))


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write the plan JSON atomically."""
    return write_json_atomic(path, plan.to_json())


def plan_from_json(payload: Any, where: str | Path) -> Plan:
    """The plan a JSON payload holds, checked; a PlanError naming every wrong field otherwise."""
    plan, problems = checked(Plan, payload)
    if plan is None:
        raise PlanError(where, "is not a unimos plan this version reads: " + "; ".join(problems),
                        "fix these fields, or run `unimos plan` again to make a new plan")
    return plan


def load_plan(path: str | Path) -> Plan:
    """Read a plan, check its fields, and recompute its hashes (so a hand-edited plan gets a new hash)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(path, "does not exist", "run `unimos plan MANIFEST --out PLAN.json` first") from None
    except (OSError, json.JSONDecodeError) as err:
        raise PlanError(path, f"cannot be read as JSON ({err})", "fix it or run `unimos plan` again") from None
    return with_hashes(plan_from_json(payload, path))


def plan_taxonomy(plan: Plan) -> Taxonomy:
    """The plan's classes as a Taxonomy (background first)."""
    return Taxonomy(tuple(ClassDef(c.name, tuple(c.parents)) for c in plan.classes))
