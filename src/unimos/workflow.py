"""The pipeline as library calls (`inspect` -> `plan` -> `preprocess` -> ...); the CLI and the demo use these."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimos.data.demo import SOURCES, SSL_SOURCES, DemoSource, make_demo_data
from unimos.data.manifest import Manifest, load_manifest
from unimos.data.validation import InspectReport, inspect_manifest
from unimos.errors import OutputError, UnimosError, ValidationFailed
from unimos.evaluation.evaluate import evaluate_predictions
from unimos.inference.model import load_model
from unimos.inference.predictor import PredictOptions, predict_files
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines import PIPELINES
from unimos.preprocess.cache import open_cache, preprocess_manifest
from unimos.preprocess.fingerprint import collect_fingerprint
from unimos.preprocess.plan import Preset, make_plan, save_plan, with_hashes
from unimos.training.config import TrainConfig
from unimos.training.loop import TrainResult, train
from unimos.utils.atomic import write_json_atomic
from unimos.utils.device import resolve_device
from unimos.utils.precision import precision_name, resolve_precision

Progress = Callable[[int, int], None]


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
                  workers: int = 2, progress: Progress | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Fingerprint the training cases and write the plan JSON to `out`.

    An existing `out` is replaced only with `overwrite` or when the new plan is the same (a plan may be hand-edited,
    and a checkpoint or cache is tied to its plan); another preset's plan is refused before any work."""
    out = Path(out)
    existing = _existing_plan(out, preset) if out.exists() and not overwrite else None
    fingerprint = collect_fingerprint(manifest, seed=seed, workers=workers, progress=progress)
    plan = make_plan(fingerprint, manifest.taxonomy, preset)
    if existing is not None and with_hashes(existing)["hash"] != plan["hash"]:
        raise OutputError(out, f"holds another plan (hash {with_hashes(existing)['hash']}; the new one is "
                          f"{plan['hash']}): it differs, by hand edits or other data", _PLAN_FIX)
    save_plan(plan, out)
    return plan


_PLAN_FIX = "give --out another file, or add --overwrite to replace it"


def _existing_plan(out: Path, preset: str) -> dict[str, Any]:
    """The plan already at `out`, refusing (before any work) a file that is not one or one of another preset."""
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


# What `unimos train` writes at the top of a run folder (self-training adds round_K folders).
RUN_OUTPUTS = ("checkpoint_final.json", "checkpoint_final.safetensors", "checkpoint_latest.json",
               "checkpoint_latest.safetensors", "log.csv", "config.json", "plan.json", "strategy.json",
               "self_training.json", "tensorboard", "report")


def run_outputs(run_dir: Path) -> list[Path]:
    """The files and folders of an earlier run in `run_dir`."""
    if not run_dir.is_dir():
        return []
    rounds = sorted(p for p in run_dir.glob("round_*") if p.is_dir())
    return [run_dir / name for name in RUN_OUTPUTS if (run_dir / name).exists()] + rounds


def _describe_run(run_dir: Path) -> str:

    for name in ("checkpoint_final", "checkpoint_latest"):
        try:
            meta = read_checkpoint_meta(run_dir / name)
        except UnimosError:
            continue
        iterations = (meta.get("config") or {}).get("iterations", "?")
        return f"a run trained to step {meta.get('step')} of {iterations} ({name}, method {meta.get('method')})"
    return "the files of an earlier run"


def check_run_folder(run_dir: str | Path, resume: bool, overwrite: bool) -> list[Path]:
    """Refuse, before any work, what cannot be done with the run folder: an earlier run without --resume or
    --overwrite (naming it), both flags, --resume with no run there; returns the earlier run's files."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise UnimosError("--resume/--overwrite", "both were given", "give --resume to continue the run in --out, "
                          "or --overwrite to replace it, not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(run_dir, "is a file, not a run folder", "give --out a folder path")
    found = run_outputs(run_dir)
    if resume and not found:
        raise OutputError(run_dir, "holds no run to resume (no checkpoint_latest)",
                          "drop --resume to start a new run there, or give --out the folder of the run to continue")
    if found and not (resume or overwrite):
        shown = ", ".join(p.name for p in found[:6]) + (" ..." if len(found) > 6 else "")
        raise OutputError(run_dir, f"holds {_describe_run(run_dir)} ({shown})",
                          "add --resume to continue it, or --overwrite to replace it, or give --out another folder")
    return found


_SET_ASIDE = ".replaced-run"  # where --overwrite keeps the earlier run until the new one has a checkpoint


def _set_aside(run_dir: Path, found: list[Path]) -> Path:
    """Move the earlier run's files into a hidden folder of `run_dir`, so that nothing of it mixes with the new run
    and it can come back if the new one fails before its first checkpoint."""
    aside = run_dir / _SET_ASIDE
    shutil.rmtree(aside, ignore_errors=True)  # a set-aside run of a killed earlier attempt
    aside.mkdir()
    for path in found:
        path.rename(aside / path.name)
    return aside


def _settle(aside: Path, run_dir: Path, failed: bool) -> None:
    """After the new run: the earlier one goes, unless the new run failed leaving nothing to resume (it returns)."""
    resumable = (run_dir / "checkpoint_latest.json").exists() or any(run_dir.glob("round_*/checkpoint_latest.json"))
    if failed and not resumable:
        for path in aside.iterdir():
            path.rename(run_dir / path.name)
    shutil.rmtree(aside, ignore_errors=True)


def train_from_cache(cache_dir: str | Path, plan: dict[str, Any], config: TrainConfig, run_dir: str | Path,
                     resume: bool = False, progress: Callable[[int, int, float], None] | None = None,
                     overwrite: bool = False) -> TrainResult:
    """Train on the cached cases of the configured splits; validation cases (if any) give validation Dice.

    An earlier run in `run_dir` is refused unless `resume` (continue it) or `overwrite`: it is then set aside and
    deleted once the new run ends, or put back if the new run fails before its first checkpoint."""
    run_dir = Path(run_dir)
    found = check_run_folder(run_dir, resume, overwrite)
    cached = open_cache(cache_dir, plan)
    cases = [c for c in cached if c.meta["split"] in config.train_splits]
    validation = [c for c in cached if c.meta["split"] == "validation" and c.meta["has_label"]]
    aside = _set_aside(run_dir, found) if found and overwrite else None
    try:
        if config.strategy in PIPELINES.names():  # a pipeline of several trainings
            run = PIPELINES.get(config.strategy)
            result = run(cases, plan, config, run_dir, validation_cases=validation, resume=resume, progress=progress)
        else:
            result = train(cases, plan, config, run_dir, validation_cases=validation, resume=resume,
                           progress=progress)
    except BaseException:
        if aside is not None:
            _settle(aside, run_dir, failed=True)
        raise
    if aside is not None:
        _settle(aside, run_dir, failed=False)
    return result


DEMO_METHODS = ("partial", "naive", "upper_bound")
# Iterations per method, by the arithmetic the network runs in: the default run fits in about 15 minutes on 2 CPU
# cores, quick in about 3. A bfloat16 step (a CPU with AMX) takes about 0.57 of a float32 one (0.245 s against
# 0.42 s per demo step, bench/README.md), so the same wall-clock budget held 1000 iterations instead of 700; since
# channels-last convolutions and the dense partial CE (bench/train_step.py: 1.22x per bfloat16 step) it holds 1100
# (1200 took 0.241 s a step on 2026-12-05, 15.3 minutes a run; 1100 leaves a margin). The float32 budget was not
# re-measured and stays at 700.
DEMO_ITERATIONS = {"float32": {"default": 700, "quick": 40}, "bfloat16": {"default": 1100, "quick": 40}}


def demo_iterations(quick: bool, precision: str) -> int:
    """The demo's iterations per method for a resolved precision name (float16 on a GPU counts as bfloat16)."""
    table = DEMO_ITERATIONS["float32" if precision == "float32" else "bfloat16"]
    return table["quick" if quick else "default"]


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


@dataclass
class _Prepared:
    """The demo's data made, inspected, planned and preprocessed."""

    manifest_path: Path
    manifest: Manifest
    report: InspectReport
    plan_path: Path
    plan: dict[str, Any]
    cache_dir: Path
    counts: tuple[int, int]


def _prepare_demo(out: Path, quick: bool, seed: int, workers: int, step: Callable[[str], Progress | None],
                  sources: tuple[DemoSource, ...] | None = None) -> _Prepared:
    """make data (the demo's layout, or `sources`) -> inspect -> plan -> preprocess."""

    ensure_empty_output(out)
    manifest_path = make_demo_data(out / "data", seed=seed, quick=quick, sources=sources or SOURCES)
    manifest, report = checked_manifest(manifest_path, workers=workers, progress=step("inspect"))
    plan_path = out / "plan_3mm.json"
    plan = plan_manifest(manifest, plan_path, "3mm-small", seed=seed, workers=workers, progress=step("plan"))
    cache_dir = out / "cache"
    counts = preprocess_manifest(manifest, plan, cache_dir, workers=workers, progress=step("preprocess"))
    return _Prepared(manifest_path, manifest, report, plan_path, plan, cache_dir, counts)


def complete_label_cache(out: Path, plan: dict[str, Any], workers: int = 2,
                         progress: Progress | None = None) -> Path:
    """OUT/cache_complete: every demo case with the complete labels the generator kept (DATA/manifest_complete.yaml,
    the unlabeled cases' too), preprocessed with the comparison's plan; the upper bound's and ceiling's data."""
    preprocess_manifest(load_manifest(out / "data" / "manifest_complete.yaml"), plan, out / "cache_complete",
                        workers=workers, progress=progress)
    return out / "cache_complete"


def train_and_score(name: str, cache_dir: Path, plan: dict[str, Any], manifest: Manifest, config: TrainConfig,
                    out: Path, step: Callable[[str], Progress | None] = lambda _label: None,
                    train_progress: Callable[[str], Callable[[int, int, float], None]] | None = None,
                    score_split: str = "test", resume: bool = False) -> tuple[dict, float]:
    """Train one row of a comparison, predict the manifest's `score_split` cases, evaluate; (summary, training s).

    Writes OUT/runs/NAME (checkpoints), OUT/predictions/NAME and OUT/evaluation/NAME; `resume` continues (or
    reuses) what OUT/runs/NAME already holds."""
    clock = time.perf_counter()
    # OUT belongs to the comparison (new or empty when it began): a row that cannot resume is retrained, and its
    # predictions and scores are derived again from the checkpoint.
    resume = resume and bool(run_outputs(out / "runs" / name))  # nothing there yet: the row starts
    result = train_from_cache(cache_dir, plan, config, out / "runs" / name, resume=resume, overwrite=not resume,
                              progress=train_progress(name) if train_progress else None)
    seconds = time.perf_counter() - clock
    model = load_model(result.checkpoint, device=resolve_device(config.device))
    pred_dir = out / "predictions" / name
    test_images = sorted({c.image_paths[0] for c in manifest.split(score_split)})
    modalities = sorted({c.modality for c in manifest.split(score_split)})
    options = PredictOptions(modality=modalities[0] if len(modalities) == 1 else None, precision=config.precision)
    records = predict_files(model, test_images, pred_dir, options, progress=step(f"predict {name}"), overwrite=True)
    failed = [r.error for r in records if r.error]
    if failed:
        raise UnimosError(pred_dir, f"prediction failed for {len(failed)} test case(s): {failed[0]}",
                          "see the message above; the demo data may be damaged, run the demo again")
    evaluate_predictions(pred_dir, manifest, out / "evaluation" / name, split=score_split)
    return json.loads((out / "evaluation" / name / "summary.json").read_text()), seconds


def resolved_precision_name(precision: str, device: str) -> str:
    """What `precision` means on the device training resolves `device` to (float32 / bfloat16 / float16)."""

    return precision_name(resolve_precision(precision, resolve_device(device)))


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, workers: int = 2, iterations: int | None = None,
             device: str = "auto", precision: str = "auto", progress_factory: Callable[[str], Progress] | None = None,
             train_progress: Callable[[str], Callable[[int, int, float], None]] | None = None) -> DemoResult:
    """The whole pipeline on built-in data: make data -> inspect -> plan -> preprocess -> train partial, naive and
    the complete-label upper bound with one budget -> predict the held-out test set -> evaluate -> one table."""
    out = Path(out)
    step = progress_factory or (lambda _label: None)
    started = time.perf_counter()
    prepared = _prepare_demo(out, quick, seed, workers, step)
    complete = complete_label_cache(out, prepared.plan, workers, step("complete labels"))

    budget = iterations or demo_iterations(quick, resolved_precision_name(precision, device))
    summaries: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    for method in DEMO_METHODS:
        config = TrainConfig(method="partial" if method == "upper_bound" else method, iterations=budget, seed=seed,
                             device=device, precision=precision, checkpoint_every=0, deep_supervision=True)
        cache = complete if method == "upper_bound" else prepared.cache_dir
        summaries[method], timings[f"train_{method}_s"] = train_and_score(
            method, cache, prepared.plan, prepared.manifest, config, out, step, train_progress)
    manifest, plan = prepared.manifest, prepared.plan
    results = demo_results_table(summaries, manifest.taxonomy.names[1:])
    write_json_atomic(out / "demo_results.json", results)
    write_json_atomic(out / "demo_meta.json", {
        "seed": seed, "quick": quick, "iterations_per_method": budget, "plan_hash": plan["hash"],
        "patch_size": plan["patch_size"], "batch_size": plan["batch_size"], "deep_supervision": True,
        "train_cases": len(manifest.split("train")), "test_cases": [c.case_id for c in manifest.split("test")],
        "upper_bound_labels": "labels_complete (every organ of every training case, including the unlabeled set)",
        "device": device, "precision": resolved_precision_name(precision, device),
        "seconds": {**timings, "total_s": time.perf_counter() - started},
    })
    return DemoResult(out, prepared.manifest_path, prepared.plan_path, prepared.cache_dir, prepared.report,
                      prepared.counts, ["make data", "inspect", "plan", "preprocess", "train", "predict", "evaluate"],
                      results)


SSL_STRATEGIES = ("supervised", "unimatch", "self_training", "cps", "guided_cps", "mean_teacher")
SSL_CEILING = "all_labeled"
"""Supervised training on every training case with the complete labels the generator kept, the unlabeled ones too:
no pseudo-label is better than the true label, so this bounds what any strategy can gain at the same iterations."""
SSL_ALL_ROWS = (*SSL_STRATEGIES, SSL_CEILING)  # `unimos demo --ssl --all`
# unimatch: the strategy ahead on development seed 2 (bench/README.md, "Semi-supervised demo with scarce labels")
SSL_DEFAULT_ROWS = ("supervised", "unimatch", SSL_CEILING)
DEMO_SSL_ITERATIONS = {"default": 500, "quick": 16}


def run_ssl_demo(out: str | Path, quick: bool = False, seed: int = 0, workers: int = 2, iterations: int | None = None,
                 device: str = "auto", precision: str = "auto", strategies: tuple[str, ...] = SSL_DEFAULT_ROWS,
                 sources: tuple[DemoSource, ...] | None = None,
                 progress_factory: Callable[[str], Progress] | None = None,
                 train_progress: Callable[[str], Callable[[int, int, float], None]] | None = None) -> DemoResult:
    """Supervised-only against semi-supervised strategies (`strategies`, rows of SSL_ALL_ROWS) on the same scarce
    labeled set (SSL_SOURCES: 1 labeled CT, 12 unlabeled) at the same iterations, and the `all_labeled` ceiling;
    scores on the held-out test CTs in OUT/ssl_results.json, with each row's seconds per iteration."""
    out = Path(out)
    step = progress_factory or (lambda _label: None)
    started = time.perf_counter()
    unknown = [name for name in strategies if name not in SSL_ALL_ROWS]
    if unknown:
        raise UnimosError("strategies", f"{unknown} are not rows of the semi-supervised demo",
                          f"use some of {', '.join(SSL_ALL_ROWS)}")
    prepared = _prepare_demo(out, quick, seed, workers, step, sources=sources or SSL_SOURCES)
    complete = complete_label_cache(out, prepared.plan, workers, step("complete labels")) \
        if SSL_CEILING in strategies else None
    budget = iterations or DEMO_SSL_ITERATIONS["quick" if quick else "default"]
    summaries: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for name in strategies:
        ceiling = name == SSL_CEILING
        config = TrainConfig(strategy="supervised" if ceiling else name, iterations=budget, seed=seed, device=device,
                             precision=precision, checkpoint_every=0, deep_supervision=True)
        cache = complete if ceiling and complete is not None else prepared.cache_dir
        summaries[name], seconds[name] = train_and_score(name, cache, prepared.plan, prepared.manifest,
                                                         config, out, step, train_progress)
    manifest = prepared.manifest
    results = demo_results_table(summaries, manifest.taxonomy.names[1:])
    for name in strategies:
        results[name]["seconds_per_iteration"] = seconds[name] / budget
    write_json_atomic(out / "ssl_results.json", results)
    write_json_atomic(out / "ssl_meta.json", {
        "seed": seed, "quick": quick, "iterations_per_strategy": budget, "plan_hash": prepared.plan["hash"],
        "patch_size": prepared.plan["patch_size"], "batch_size": prepared.plan["batch_size"],
        "labeled_cases": [c.case_id for c in manifest.split("train") if c.label_path is not None],
        "unlabeled_cases": [c.case_id for c in manifest.split("train") if c.label_path is None],
        "test_cases": [c.case_id for c in manifest.split("test")], "device": device,
        "precision": resolved_precision_name(precision, device),
        "labeled_batches": f"the same in every row but {SSL_CEILING} (which trains on every case's labels): "
                           "unlabeled batches are drawn from their own random streams (training/streams.py)",
        SSL_CEILING: "supervised training on every training case with its complete labels (the unlabeled cases' "
                     "too): the most the unlabeled scans could add at these iterations",
        "self_training": "the row is the round-1 student; its round-0 teacher trains exactly like the supervised row "
                         "(same seed, iterations and labeled cases), so the two rows show the round's effect; its "
                         "seconds per iteration include teacher, pseudo-labelling and student",
        "seconds": {**{f"train_{k}_s": v for k, v in seconds.items()}, "total_s": time.perf_counter() - started},
    })
    return DemoResult(out, prepared.manifest_path, prepared.plan_path, prepared.cache_dir, prepared.report,
                      prepared.counts, ["make data", "inspect", "plan", "preprocess", "train", "predict", "evaluate"],
                      results)
