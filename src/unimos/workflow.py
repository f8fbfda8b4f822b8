"""The pipeline as library calls (`inspect` -> `plan` -> `preprocess` -> ...); the CLI and the demo use these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimos.data.manifest import Manifest, load_manifest
from unimos.data.validation import InspectReport, inspect_manifest
from unimos.errors import OutputError, ValidationFailed
from unimos.preprocess.cache import preprocess_manifest
from unimos.preprocess.fingerprint import collect_fingerprint
from unimos.preprocess.plan import Preset, make_plan, save_plan

Progress = Callable[[int, int], None]


def checked_manifest(path: str | Path, workers: int = 2, progress: Progress | None = None) -> tuple[Manifest, InspectReport]:
    """Load and inspect a manifest; raise ValidationFailed listing every problem when it is not usable."""
    manifest = load_manifest(path)
    report = inspect_manifest(manifest, workers=workers, progress=progress)
    if not report.ok:
        raise ValidationFailed(report.problems)
    return manifest, report


def plan_manifest(manifest: Manifest, out: str | Path, preset: Preset = "3mm", seed: int = 0,
                  workers: int = 2, progress: Progress | None = None) -> dict[str, Any]:
    """Fingerprint the training cases and write the plan JSON to `out`."""
    fingerprint = collect_fingerprint(manifest, seed=seed, workers=workers, progress=progress)
    plan = make_plan(fingerprint, manifest.taxonomy, preset)
    save_plan(plan, out)
    return plan


@dataclass
class DemoResult:
    """What `unimos demo` produced, for printing and for later stages."""

    out: Path
    manifest_path: Path
    plan_path: Path
    cache_dir: Path
    report: InspectReport
    preprocessed: tuple[int, int]
    stages_done: list[str] = field(default_factory=list)


def ensure_empty_output(out: Path) -> None:
    """`--out` must be a new or an empty folder, so that nothing of the user's is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(out, "exists and is not an empty folder", "give a new or an empty folder with --out")


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, workers: int = 2,
             progress_factory: Callable[[str], Progress] | None = None) -> DemoResult:
    """Make the built-in data, inspect it, plan at 3 mm and preprocess it into `out`."""
    from unimos.data.demo import make_demo_data

    out = Path(out)
    ensure_empty_output(out)
    step = progress_factory or (lambda _label: None)
    manifest_path = make_demo_data(out / "data", seed=seed, quick=quick)
    manifest, report = checked_manifest(manifest_path, workers=workers, progress=step("inspect"))
    plan_path = out / "plan_3mm.json"
    plan = plan_manifest(manifest, plan_path, "3mm", seed=seed, workers=workers, progress=step("plan"))
    cache_dir = out / "cache"
    counts = preprocess_manifest(manifest, plan, cache_dir, workers=workers, progress=step("preprocess"))
    return DemoResult(out, manifest_path, plan_path, cache_dir, report, counts,
                      ["make data", "inspect", "plan", "preprocess"])
