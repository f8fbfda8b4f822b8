"""A project's manifest and plan as library calls: a manifest loaded and inspected (refused with every problem when
unusable), the folders it reads, its plan fingerprinted and written (`unimos plan`, `preprocess`, `train`, the demo)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unimos.data.manifest import Manifest, load_manifest
from unimos.data.plan_spec import Plan
from unimos.data.validation import InspectReport, inspect_manifest
from unimos.errors import OutputError, ValidationFailed
from unimos.preprocess.fingerprint import collect_fingerprint
from unimos.preprocess.plan import Preset, json_hashes, make_plan, save_plan

Progress = Callable[[int, int], None]
"""A stage's progress callback: (done, total)."""


def checked_manifest(path: str | Path, workers: int = 2,
                     progress: Progress | None = None) -> tuple[Manifest, InspectReport]:
    """Load and inspect a manifest; raise ValidationFailed listing every problem when it is not usable."""
    manifest = load_manifest(path)
    report = inspect_manifest(manifest, workers=workers, progress=progress)
    if not report.ok:
        raise ValidationFailed(report.problems)
    return manifest, report


def manifest_input_folders(manifest: Manifest) -> list[Path]:
    """The folders that hold the manifest's image and label files."""
    folders = {p.parent for case in manifest.cases for p in (*case.image_paths, case.label_path) if p is not None}
    return sorted(folders)


def plan_manifest(manifest: Manifest, out: str | Path, preset: Preset = "3mm", seed: int = 0,
                  workers: int = 2, progress: Progress | None = None, overwrite: bool = False) -> Plan:
    """Fingerprint the training cases and write the plan JSON to `out`.

    An existing `out` is replaced only with `overwrite` or when the new plan is the same (a plan may be hand-edited,
    and a checkpoint or cache is tied to its plan); another preset's plan is refused before any work."""
    out = Path(out)
    existing = _existing_plan(out, preset) if out.exists() and not overwrite else None
    fingerprint = collect_fingerprint(manifest, seed=seed, workers=workers, progress=progress)
    plan = make_plan(fingerprint, manifest.taxonomy, preset)
    existing_hash = None if existing is None else json_hashes(existing)["hash"]
    if existing_hash is not None and existing_hash != plan.hash:
        raise OutputError(out, f"holds another plan (hash {existing_hash}; the new one is {plan.hash}): it differs, "
                          "by hand edits or other data", _PLAN_FIX)
    save_plan(plan, out)
    return plan


_PLAN_FIX = "give --out another file, or add --overwrite to replace it"


def _existing_plan(out: Path, preset: str) -> dict[str, Any]:
    """The JSON of the plan already at `out` (unchecked: only its hash is compared), refusing (before any work) a
    file that is not one or one of another preset."""
    if out.is_dir():
        raise OutputError(out, "is a folder, not a plan file", "give --out a file path such as work/plan_3mm.json")
    try:
        existing = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        existing = None
    if not isinstance(existing, dict) or "unimos_plan_version" not in existing:
        raise OutputError(out, "exists and is not a unimos plan", _PLAN_FIX)
    if existing.get("preset") != preset:
        raise OutputError(out, f"holds a plan of preset '{existing.get('preset')}', not '{preset}'", _PLAN_FIX)
    return existing
