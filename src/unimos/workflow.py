"""The pipeline as library calls (`inspect` -> `plan` -> `preprocess` -> ...); the CLI and the demo use these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unimos.data.manifest import Manifest, load_manifest
from unimos.data.validation import InspectReport, inspect_manifest
from unimos.errors import OutputError, UnimosError, ValidationFailed
from unimos.preprocess.cache import preprocess_manifest
from unimos.preprocess.fingerprint import collect_fingerprint
from unimos.preprocess.plan import Preset, make_plan, save_plan

if TYPE_CHECKING:  # torch is imported only by the stages that train
    from unimos.training.config import TrainConfig
    from unimos.training.loop import TrainResult

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


def train_from_cache(cache_dir: str | Path, plan: dict[str, Any], config: "TrainConfig", run_dir: str | Path,
                     resume: bool = False, progress: Callable[[int, int, float], None] | None = None) -> "TrainResult":
    """Train on the cached cases of the configured splits; validation cases (if any) give validation Dice."""
    from unimos.preprocess.cache import open_cache
    from unimos.training.loop import train

    cached = open_cache(cache_dir, plan)
    cases = [c for c in cached if c.meta["split"] in config.train_splits]
    validation = [c for c in cached if c.meta["split"] == "validation" and c.meta["has_label"]]
    return train(cases, plan, config, run_dir, validation_cases=validation, resume=resume, progress=progress)


DEMO_METHODS = ("partial", "naive", "upper_bound")
# Iterations per method: default fits the demo in about 15 minutes on 2 CPU cores, quick in about 3.
DEMO_ITERATIONS = {"default": 700, "quick": 40}


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
    results: dict[str, Any] = field(default_factory=dict)


def ensure_empty_output(out: Path) -> None:
    """`--out` must be a new or an empty folder, so that nothing of the user's is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(out, "exists and is not an empty folder", "give a new or an empty folder with --out")


def demo_results_table(summaries: dict[str, dict[str, Any]], organs: list[str]) -> dict[str, Any]:
    """{method: {organ: {"dsc", "nsd"}, ..., "mean": {...}}} with the plain mean over the organs."""
    table: dict[str, Any] = {}
    for method, summary in summaries.items():
        per = summary["per_structure"]
        rows = {organ: {"dsc": float(per[organ]["dsc"]), "nsd": float(per[organ]["nsd"])} for organ in organs}
        rows["mean"] = {m: float(sum(rows[o][m] for o in organs) / len(organs)) for m in ("dsc", "nsd")}
        table[method] = rows
    return table


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, workers: int = 2, iterations: int | None = None,
             device: str = "auto", progress_factory: Callable[[str], Progress] | None = None,
             train_progress: Callable[[str], Callable[[int, int, float], None]] | None = None) -> DemoResult:
    """The whole pipeline on built-in data: make data -> inspect -> plan -> preprocess -> train partial, naive and
    the complete-label upper bound with one budget -> predict the held-out test set -> evaluate -> one table."""
    import json
    import time

    from unimos.data.demo import make_demo_data
    from unimos.evaluation.evaluate import evaluate_predictions
    from unimos.inference.predictor import PredictOptions, load_model, predict_files
    from unimos.training.config import TrainConfig
    from unimos.utils.atomic import write_json_atomic

    out = Path(out)
    ensure_empty_output(out)
    step = progress_factory or (lambda _label: None)
    started = time.perf_counter()
    manifest_path = make_demo_data(out / "data", seed=seed, quick=quick)
    manifest, report = checked_manifest(manifest_path, workers=workers, progress=step("inspect"))
    complete = load_manifest(out / "data" / "manifest_complete.yaml")
    plan_path = out / "plan_3mm.json"
    plan = plan_manifest(manifest, plan_path, "3mm-small", seed=seed, workers=workers, progress=step("plan"))
    cache_dir = out / "cache"
    counts = preprocess_manifest(manifest, plan, cache_dir, workers=workers, progress=step("preprocess"))
    preprocess_manifest(complete, plan, out / "cache_complete", workers=workers, progress=step("complete labels"))

    budget = iterations or DEMO_ITERATIONS["quick" if quick else "default"]
    test_images = sorted({c.image_paths[0] for c in manifest.split("test")})
    summaries: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    for method in DEMO_METHODS:
        config = TrainConfig(method="partial" if method == "upper_bound" else method, iterations=budget, seed=seed,
                             device=device, checkpoint_every=0)
        clock = time.perf_counter()
        result = train_from_cache(out / ("cache_complete" if method == "upper_bound" else "cache"), plan, config,
                                  out / "runs" / method,
                                  progress=train_progress(method) if train_progress else None)
        timings[f"train_{method}_s"] = time.perf_counter() - clock
        model = load_model(result.checkpoint, device="cuda" if device == "cuda" else "cpu")
        pred_dir = out / "predictions" / method
        records = predict_files(model, test_images, pred_dir, PredictOptions(modality="CT"),
                                progress=step(f"predict {method}"))
        failed = [r.error for r in records if r.error]
        if failed:
            raise UnimosError(pred_dir, f"prediction failed for {len(failed)} test case(s): {failed[0]}",
                              "see the message above; the demo data may be damaged, run the demo again")
        evaluate_predictions(pred_dir, manifest, out / "evaluation" / method, split="test")
        summaries[method] = json.loads((out / "evaluation" / method / "summary.json").read_text())
    organs = manifest.taxonomy.names[1:]
    results = demo_results_table(summaries, organs)
    write_json_atomic(out / "demo_results.json", results)
    write_json_atomic(out / "demo_meta.json", {
        "seed": seed, "quick": quick, "iterations_per_method": budget, "plan_hash": plan["hash"],
        "patch_size": plan["patch_size"], "batch_size": plan["batch_size"],
        "train_cases": len(manifest.split("train")), "test_cases": [c.case_id for c in manifest.split("test")],
        "upper_bound_labels": "labels_complete (every organ of every training case, including the unlabeled set)",
        "device": device, "seconds": {**timings, "total_s": time.perf_counter() - started},
    })
    return DemoResult(out, manifest_path, plan_path, cache_dir, report, counts,
                      ["make data", "inspect", "plan", "preprocess", "train", "predict", "evaluate"], results)
