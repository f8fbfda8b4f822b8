"""`unimos demo` as library calls: the demo collection made, inspected, planned and preprocessed, then the
partial-label comparison (`run_demo`) or the semi-supervised one (`run_ssl_demo`) trained, scored and tabled."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimos.data.manifest import Manifest, load_manifest
from unimos.data.plan_spec import Plan
from unimos.data.validation import InspectReport
from unimos.errors import OutputError, UnimosError
from unimos.phantoms import SOURCES, SSL_SOURCES, DemoSource, make_demo_data
from unimos.pipelines.lesion_stages import organ_taxonomy
from unimos.pipelines.project import Progress, checked_manifest, plan_manifest
from unimos.pipelines.run import predict_and_score, resolved_precision_name, train_and_score, train_from_cache
from unimos.preprocess.cache import preprocess_manifest
from unimos.training.config import TrainConfig
from unimos.utils.atomic import write_json_atomic
from unimos.utils.device import cpu_model
from unimos.utils.runtime import resolve_runtime

DEMO_METHODS = ("partial", "naive", "upper_bound")
PROGRESSIVE_ROW = "progressive"
"""`unimos demo --progressive`: the organ -> lesion pipeline of paper 004 on the demo's labels (organ stage, organ +
lesion stage, then the lesion stage on organ crops)."""
# One recipe on every machine (iterations; the 3mm-small plan gives 48^3 patches, batch 2, DynUNet 16-128 with
# deep supervision): the result must not depend on the CPU. Chosen so that the default demo ends within 15 minutes
# on 2 cores of either CPU kind with `--precision auto` (bfloat16 on AMX and on AVX-512 BF16): 900 iterations took
# 13.4 minutes with an Intel Xeon's AMX (0.27 s a step), 700 took 10.2-10.7, and an AMD EPYC's bfloat16 step is
# about 1.4 times slower (bench/README.md, "The demo's recipe").
DEMO_ITERATIONS = {"default": 700, "quick": 40}
# The rows' loss: paper 002's focal CE + merged Dice (eq. 6 without the entropy term), the naive row its
# unannotated-as-background reading. With plain CE + Dice the gallbladder, annotated only in the 2 BTCV-like and
# the 3 sparse CTs, stayed at a 0.009 mean probability on its own training voxels for all 700 steps on development
# seed 6 (DSC 0.000; seed 5 escaped after step 400); focal CE, which lowers the weight of the easy background
# voxels, raised it to 0.62 DSC there, every other organ within +-0.02 (bench/README.md, "The demo's loss").
DEMO_LOSSES = {"partial": "partial_focal_dice", "naive": "naive_focal_dice", "upper_bound": "partial_focal_dice",
               PROGRESSIVE_ROW: "partial_focal_dice"}
LESION_STAGE_ROW = "partial+lesion_stage"
"""`unimos demo --lesion-stage`: the `partial` row's organ model with a lesion stage (pipelines/lesion_crops.py)
trained on the same labels, LESION_STAGE_ITERATIONS per lesion group."""
LESION_STAGE_ITERATIONS = {"default": 300, "quick": 10}


def add_lesion_stage_row(out: Path, cache_dir: Path, plan: Plan, manifest: Manifest, seed: int, quick: bool,
                         device: str, precision: str, step: Callable[[str], Progress | None] = lambda _label: None,
                         train_progress: Callable[[str], Callable[[int, int, float], None]] | None = None,
                         ) -> tuple[dict[str, Any], float]:
    """Train the lesion stage on a demo's cache beside its finished `partial` row (OUT/runs/partial) and score the
    pair on the test set as OUT/{runs,predictions,evaluation}/partial+lesion_stage; (summary, training s)."""
    clock = time.perf_counter()
    runtime = resolve_runtime(device, precision)
    config = TrainConfig(method=DEMO_LOSSES["partial"], strategy="lesion_crops", seed=seed, device=device,
                         precision=precision, iterations=LESION_STAGE_ITERATIONS["quick" if quick else "default"],
                         checkpoint_every=0, deep_supervision=True)
    run_dir = out / "runs" / LESION_STAGE_ROW
    train_from_cache(cache_dir, plan, config, run_dir, runtime=runtime,
                     progress=train_progress(LESION_STAGE_ROW) if train_progress else None)
    seconds = time.perf_counter() - clock
    summary = predict_and_score(LESION_STAGE_ROW, out / "runs" / "partial" / "checkpoint_final", manifest, out,
                                runtime, step, lesion_stage=run_dir)
    return summary, seconds


def demo_row_config(method: str, iterations: int, seed: int, quick: bool, device: str = "auto",
                    precision: str = "auto") -> TrainConfig:
    """How `unimos demo` trains one of its rows (DEMO_METHODS or PROGRESSIVE_ROW): its loss, strategy and options."""
    progressive = method == PROGRESSIVE_ROW
    options = {"lesion_iterations": LESION_STAGE_ITERATIONS["quick" if quick else "default"]} if progressive else {}
    return TrainConfig(method=DEMO_LOSSES[method], strategy="progressive" if progressive else "supervised",
                       iterations=iterations, seed=seed, device=device, precision=precision, checkpoint_every=0,
                       deep_supervision=True, strategy_options=options)


def demo_iterations(quick: bool) -> int:
    """The demo's training iterations per row: the same on every machine and in every precision."""
    return DEMO_ITERATIONS["quick" if quick else "default"]


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


def demo_results_table(summaries: dict[str, dict[str, Any]], organs: list[str],
                       lesions: list[str] | None = None) -> dict[str, Any]:
    """{method: {organ: {"dsc", "nsd"}, ..., "mean": {...}, lesion: {...}, ..., "lesion_mean": {...}}}: "mean" is
    the plain mean over the organs, "lesion_mean" over the lesion classes (when there are any)."""
    table: dict[str, Any] = {}
    for method, summary in summaries.items():
        per = summary["per_structure"]
        rows: dict[str, Any] = {}
        for group, mean_key in ((organs, "mean"), (lesions or [], "lesion_mean")):
            if not group:
                continue
            for name in group:
                rows[name] = {"dsc": float(per[name]["dsc"]), "nsd": float(per[name]["nsd"])}
            rows[mean_key] = {m: float(sum(rows[o][m] for o in group) / len(group)) for m in ("dsc", "nsd")}
        table[method] = rows
    return table


def organs_and_lesions(manifest: Manifest) -> tuple[list[str], list[str]]:
    """The project's classes split into organs and lesion classes (those with a parent)."""
    organs = organ_taxonomy(manifest.taxonomy).names[1:]
    return organs, [n for n in manifest.taxonomy.names[1:] if n not in organs]


@dataclass
class PreparedDemo:
    """The demo's data made, inspected, planned and preprocessed."""

    manifest_path: Path
    manifest: Manifest
    report: InspectReport
    plan_path: Path
    plan: Plan
    cache_dir: Path
    counts: tuple[int, int]


def prepare_demo(out: Path, quick: bool, seed: int, workers: int, step: Callable[[str], Progress | None],
                 sources: tuple[DemoSource, ...] | None = None) -> PreparedDemo:
    """make data (the demo's layout, or `sources`) -> inspect -> plan -> preprocess."""
    ensure_empty_output(out)
    manifest_path = make_demo_data(out / "data", seed=seed, quick=quick, sources=sources or SOURCES)
    manifest, report = checked_manifest(manifest_path, workers=workers, progress=step("inspect"))
    plan_path = out / "plan_3mm.json"
    plan = plan_manifest(manifest, plan_path, "3mm-small", seed=seed, workers=workers, progress=step("plan"))
    cache_dir = out / "cache"
    counts = preprocess_manifest(manifest, plan, cache_dir, workers=workers, progress=step("preprocess"))
    return PreparedDemo(manifest_path, manifest, report, plan_path, plan, cache_dir, counts)


def complete_label_cache(out: Path, plan: Plan, workers: int = 2,
                         progress: Progress | None = None) -> Path:
    """OUT/cache_complete: every demo case with the complete labels the generator kept (DATA/manifest_complete.yaml,
    the unlabeled cases' too), preprocessed with the comparison's plan; the upper bound's and ceiling's data."""
    preprocess_manifest(load_manifest(out / "data" / "manifest_complete.yaml"), plan, out / "cache_complete",
                        workers=workers, progress=progress)
    return out / "cache_complete"


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, workers: int = 2, iterations: int | None = None,
             device: str = "auto", precision: str = "auto", progressive: bool = False, lesion_stage: bool = False,
             progress_factory: Callable[[str], Progress] | None = None,
             train_progress: Callable[[str], Callable[[int, int, float], None]] | None = None) -> DemoResult:
    """The whole pipeline on built-in data: make data -> inspect -> plan -> preprocess -> train partial, naive and
    the complete-label upper bound with one recipe -> predict the held-out test set -> evaluate -> one table of
    organ and lesion scores. `progressive`: also the organ -> lesion pipeline (paper 004), its two whole-volume
    stages trained for the same iterations as a row and its lesion stage as `lesion_stage` trains it.
    `lesion_stage`: also the `partial` organ model with a lesion stage (`add_lesion_stage_row`)."""
    out = Path(out)
    step = progress_factory or (lambda _label: None)
    started = time.perf_counter()
    prepared = prepare_demo(out, quick, seed, workers, step)
    complete = complete_label_cache(out, prepared.plan, workers, step("complete labels"))

    budget = iterations or demo_iterations(quick)
    summaries: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    for method in (*DEMO_METHODS, PROGRESSIVE_ROW) if progressive else DEMO_METHODS:
        config = demo_row_config(method, budget, seed, quick, device, precision)
        cache = complete if method == "upper_bound" else prepared.cache_dir
        summaries[method], timings[f"train_{method}_s"] = train_and_score(
            method, cache, prepared.plan, prepared.manifest, config, out, step, train_progress)
    if lesion_stage:
        summaries[LESION_STAGE_ROW], timings[f"train_{LESION_STAGE_ROW}_s"] = add_lesion_stage_row(
            out, prepared.cache_dir, prepared.plan, prepared.manifest, seed, quick, device, precision, step,
            train_progress)
    manifest, plan = prepared.manifest, prepared.plan
    results = demo_results_table(summaries, *organs_and_lesions(manifest))
    write_json_atomic(out / "demo_results.json", results)
    network = plan.network
    write_json_atomic(out / "demo_meta.json", {
        "seed": seed, "quick": quick, "iterations_per_method": budget, "plan_hash": plan.hash,
        "recipe": {"iterations": budget, "patch_size": plan.patch_size, "batch_size": plan.batch_size,
                   "spacing_mm": plan.target_spacing_mm, "network": network.get("name"),
                   "filters": network.get("filters"), "deep_supervision": True, "losses": DEMO_LOSSES},
        "patch_size": plan.patch_size, "batch_size": plan.batch_size, "deep_supervision": True,
        "train_cases": len(manifest.split("train")), "test_cases": [c.case_id for c in manifest.split("test")],
        "upper_bound_labels": "labels_complete (every organ and lesion of every training case, the unlabeled "
                              "set's too)",
        **({PROGRESSIVE_ROW: "stage 1 (organs, lesions read as their organ) and stage 2 (organs + lesions on the "
                             "fused organ pseudo-labels), each trained for iterations_per_method, then stage 3 (the "
                             "lesion stage on organ crops, as the partial+lesion_stage row trains it)"}
           if progressive else {}),
        **({LESION_STAGE_ROW: f"the partial row's organ model with a lesion stage (one network per lesion group "
                              f"on organ crops, {LESION_STAGE_ITERATIONS['quick' if quick else 'default']} "
                              f"iterations each, 32^3 patches)"} if lesion_stage else {}),
        "device": device, "precision": resolved_precision_name(precision, device), "cpu": cpu_model(),
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
    prepared = prepare_demo(out, quick, seed, workers, step, sources=sources or SSL_SOURCES)
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
    results = demo_results_table(summaries, *organs_and_lesions(manifest))
    for name in strategies:
        results[name]["seconds_per_iteration"] = seconds[name] / budget
    write_json_atomic(out / "ssl_results.json", results)
    write_json_atomic(out / "ssl_meta.json", {
        "seed": seed, "quick": quick, "iterations_per_strategy": budget, "plan_hash": prepared.plan.hash,
        "patch_size": prepared.plan.patch_size, "batch_size": prepared.plan.batch_size,
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
