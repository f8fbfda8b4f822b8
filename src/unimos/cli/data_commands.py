"""What `unimos make-demo-data`, `inspect`, `evaluate` and `report` do once their options are parsed (cli/main.py);
none of them loads torch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from unimos.cli.console import console, err_console
from unimos.cli.render import coverage_table, geometry_tables, progress_bars
from unimos.data.manifest import load_manifest
from unimos.data.validation import inspect_manifest
from unimos.errors import ValidationFailed
from unimos.evaluation.evaluate import EVALUATION_OUTPUTS, check_tolerance, evaluate_predictions
from unimos.phantoms import make_demo_data as write_demo_collection
from unimos.report.html import write_report
from unimos.utils.folders import refuse_existing_outputs


def make_demo_data(*, out: Path, seed: int, quick: bool) -> None:
    """`unimos make-demo-data` (its options and help: cli/main.py)."""
    manifest = write_demo_collection(out, seed=seed, quick=quick)
    console.print(f"wrote [bold]{manifest}[/]")


def inspect(*, manifest: Path, workers: int) -> None:
    """`unimos inspect` (its options and help: cli/main.py)."""
    loaded = load_manifest(manifest)
    with progress_bars(err_console) as bars:
        report = inspect_manifest(loaded, workers=workers, progress=bars("inspect"))
    console.print(f"[bold]{loaded.name}[/]: {len(loaded.sources)} sources, {len(loaded.cases)} cases, "
                  f"{loaded.taxonomy.num_classes - 1} classes")
    console.print(coverage_table(report))
    for table in geometry_tables(report):
        console.print(table)
    if not report.ok:
        raise ValidationFailed(report.problems)
    console.print("[green]no problems found[/]")


def evaluate(
    *,
    predictions: Path,
    manifest: Path,
    out: Optional[Path],
    split: str,
    tolerance_mm: float,
    report: bool,
    allow_missing: bool,
    overwrite: bool,
) -> None:
    """`unimos evaluate` (its options and help: cli/main.py)."""
    check_tolerance(tolerance_mm)
    target = out or predictions / "evaluation"
    refuse_existing_outputs(target, EVALUATION_OUTPUTS, overwrite, "an earlier evaluation")
    loaded = load_manifest(manifest)
    evaluate_predictions(predictions, loaded, target, split=None if split == "all" else split,
                         tolerance_mm=tolerance_mm, allow_missing=allow_missing)
    console.print((target / "summary.md").read_text())
    console.print(f"scores in [bold]{target}[/]")
    if report:

        console.print(f"report: [bold]{write_report(target, manifest=manifest, predictions=predictions)}[/]")


def report(*, run_dir: Path, out: Optional[Path], max_cases: int) -> None:
    """`unimos report` (its options and help: cli/main.py)."""
    console.print(f"report: [bold]{write_report(run_dir, out, max_cases=max_cases)}[/]")
