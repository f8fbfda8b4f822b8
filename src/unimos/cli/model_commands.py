"""What `unimos plan`, `preprocess`, `train`, `predict`, `strategies` and `demo` do once their options are parsed
(cli/main.py); they load torch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from unimos.cli.console import console, err_console, parse_key_values
from unimos.cli.render import coverage_table, progress_bars, results_table, strategy_table
from unimos.data.io import list_inputs
from unimos.errors import UnimosError
from unimos.inference.lesion_stage import load_lesion_stage
from unimos.inference.model import load_model
from unimos.inference.predictor import PredictOptions, predict_files
from unimos.pipelines.demo import (
    DEMO_METHODS,
    LESION_STAGE_ROW,
    PROGRESSIVE_ROW,
    SSL_ALL_ROWS,
    SSL_DEFAULT_ROWS,
    run_demo,
    run_ssl_demo,
)
from unimos.pipelines.project import checked_manifest, manifest_input_folders, plan_manifest
from unimos.pipelines.run import check_run_folder, train_from_cache
from unimos.preprocess.cache import cache_root, preprocess_manifest
from unimos.preprocess.plan import load_plan
from unimos.report.html import write_report
from unimos.strategies import STRATEGIES
from unimos.strategies.base import check_strategy_options, option_docs
from unimos.training.config import TrainConfig
from unimos.training.loop import check_config
from unimos.utils.device import resolve_device
from unimos.utils.folders import check_output_folder, refuse_output_inside_inputs
from unimos.utils.precision import check_precision, emulated_precision_warning


def plan(*, manifest: Path, out: Path, preset: str, seed: int, workers: int, overwrite: bool) -> None:
    """`unimos plan` (its options and help: cli/main.py)."""
    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        plan = plan_manifest(loaded, out, preset, seed=seed, workers=workers, progress=bars("fingerprint"),  # type: ignore[arg-type]
                             overwrite=overwrite)
    network = plan.network  # the network's own config dict
    console.print(f"wrote [bold]{out}[/] (hash {plan.hash}): spacing {plan.target_spacing_mm} mm, "
                  f"patch {plan.patch_size}, {len(network['strides'])} stages, filters {network['filters']}")


def preprocess(*, manifest: Path, plan: Path, cache: Path, workers: int, allow_output_in_input: bool) -> None:
    """`unimos preprocess` (its options and help: cli/main.py)."""
    loaded_plan = load_plan(plan)
    check_output_folder(cache, "--cache")
    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        refuse_output_inside_inputs(cache, manifest_input_folders(loaded), "--cache", allow_output_in_input)
        done, skipped = preprocess_manifest(loaded, loaded_plan, cache, workers=workers,
                                            progress=bars("preprocess"))
    console.print(f"preprocessed {done} case(s), {skipped} already cached, in "
                  f"[bold]{cache_root(cache, loaded_plan)}[/]")


def warn_if_emulated(precision: str, device: str) -> None:
    """One warning line when the precision asked for would be emulated on this device (utils/precision.py)."""
    warning = emulated_precision_warning(precision, resolve_device(device))
    if warning:
        err_console.print(f"[yellow]warning:[/] --precision {precision}: {warning}", soft_wrap=True)


def train(
    *,
    manifest: Path,
    out: Path,
    plan: Path,
    cache: Path,
    method: str,
    strategy: str,
    strategy_option: Optional[list[str]],
    network: str,
    iterations: int,
    sampler: str,
    foreground_fraction: float,
    roi_margin_mm: Optional[float],
    slice_resize: int,
    slice_patch: int,
    batch_size: int,
    deep_supervision: bool,
    optimizer: str,
    learning_rate: float,
    schedule: str,
    seed: int,
    device: str,
    precision: str,
    validate_every: int,
    checkpoint_every: int,
    log_every: int,
    tensorboard: bool,
    resume: bool,
    overwrite: bool,
    workers: int,
    allow_output_in_input: bool,
) -> None:
    """`unimos train` (its options and help: cli/main.py)."""
    loaded_plan = load_plan(plan)
    options = parse_key_values(strategy_option or [])
    check_strategy_options(strategy, options)
    check_output_folder(cache, "--cache")
    check_run_folder(out, resume, overwrite)
    config = TrainConfig(method=method, strategy=strategy, strategy_options=options,
                         network=network, iterations=iterations, sampler=sampler,
                         foreground_fraction=foreground_fraction, roi_margin_mm=roi_margin_mm,
                         slice_resize=slice_resize, slice_patch=slice_patch, batch_size=batch_size,
                         deep_supervision=deep_supervision, optimizer=optimizer, learning_rate=learning_rate,
                         schedule=schedule, seed=seed, device=device, precision=check_precision(precision),
                         validate_every=validate_every, checkpoint_every=checkpoint_every, log_every=log_every,
                         tensorboard=tensorboard)
    check_config(config)
    warn_if_emulated(precision, device)
    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        inputs = manifest_input_folders(loaded)
        for folder, option in ((cache, "--cache"), (out, "--out")):
            refuse_output_inside_inputs(folder, inputs, option, allow_output_in_input)
        preprocess_manifest(loaded, loaded_plan, cache, workers=workers, progress=bars("preprocess"))
        result = train_from_cache(cache, loaded_plan, config, out, resume=resume, overwrite=overwrite,
                                  progress=bars("train"))
    console.print(f"trained {result.steps} steps in {result.seconds:.0f} s "
                  f"(data wait {100 * result.data_wait_share:.1f}%"
                  f" of step time); checkpoint [bold]{result.checkpoint}[/]")
    lesion_stage = getattr(result, "lesion_stage", None)  # the progressive pipeline's stage 3
    if lesion_stage is not None:
        console.print(f"lesion stage [bold]{lesion_stage}[/]: predict with both, `unimos predict {result.checkpoint} "
                      f"IMAGES --out PREDICTIONS --lesion-model {lesion_stage}`")


def predict(
    *,
    checkpoint: Path,
    inputs: Path,
    out: Path,
    overlap: float,
    mirror: bool,
    largest_component: bool,
    modality: Optional[str],
    skip_existing: bool,
    output_format: str,
    memory_budget_gib: Optional[float],
    window: str,
    coarse: Optional[Path],
    roi_margin_mm: float,
    lesion_model: Optional[Path],
    device: str,
    precision: str,
    force: bool,
    overwrite: bool,
    allow_output_in_input: bool,
) -> None:
    """`unimos predict` (its options and help: cli/main.py)."""
    files = list_inputs(inputs)
    folders = {inputs if inputs.is_dir() else inputs.parent} | {f if f.is_dir() else f.parent for f in files}
    refuse_output_inside_inputs(out, sorted(folders), "--out", allow_output_in_input)
    options = PredictOptions(overlap=overlap, mirror=mirror, largest_component=largest_component, modality=modality,
                             memory_budget_gib=memory_budget_gib, output_format=output_format, window=window,
                             precision=precision, force=force)

    resolve_device(device)  # a missing GPU is the user's to fix, named before the model is read
    warn_if_emulated(precision, device)
    model = load_model(checkpoint, device)
    first_stage = load_model(coarse, device) if coarse is not None else None
    lesions = load_lesion_stage(lesion_model, device) if lesion_model is not None else None
    with progress_bars(err_console) as bars:
        records = predict_files(model, files, out, options, skip_existing=skip_existing, progress=bars("predict"),
                                coarse=first_stage, roi_margin_mm=roi_margin_mm, overwrite=overwrite,
                                lesion_stage=lesions)
    failed = [r for r in records if r.error]
    for record in records:
        if record.stages.get("skipped"):
            console.print(f"{record.case_id}: skipped, {record.output} exists")
        elif not record.error:
            console.print(f"{record.case_id}: {record.seconds:.1f} s, peak {record.peak_rss_mib:.0f} MiB "
                          f"-> {record.output}")
        for warning in getattr(record, "warnings", []):
            err_console.print(f"[yellow]warning:[/] {record.case_id}: {warning}", soft_wrap=True)
    if failed:
        err_console.print(f"[bold red]{len(failed)} of {len(records)} case(s) failed[/]:")
        for record in failed:
            err_console.print(f"  - {record.error}", soft_wrap=True)
        raise typer.Exit(code=1)


def strategies(*, name: Optional[str]) -> None:
    """`unimos strategies` (its options and help: cli/main.py)."""
    for key in [name] if name else STRATEGIES.names():
        cls = STRATEGIES.get(key)
        console.print(strategy_table(key, cls.summary, cls.source, option_docs(key)))


def demo(
    *,
    out: Path,
    quick: bool,
    seed: int,
    iterations: Optional[int],
    ssl: bool,
    progressive: bool,
    lesion_stage: bool,
    every: bool,
    device: str,
    precision: str,
    workers: int,
) -> None:
    """`unimos demo` (its options and help: cli/main.py)."""
    check_precision(precision)
    warn_if_emulated(precision, device)
    if every and not ssl:
        raise UnimosError("--all", "chooses the rows of the semi-supervised comparison only",
                          "add --ssl, or drop --all")
    for flag, given in (("--progressive", progressive), ("--lesion-stage", lesion_stage)):
        if given and ssl:
            raise UnimosError(flag, "adds a row to the partial-label comparison, not to --ssl's",
                              f"drop --ssl, or drop {flag}")
    with progress_bars(err_console) as bars:
        def train_bar(method: str):
            return bars(f"train {method}")

        common = dict(quick=quick, seed=seed, workers=workers, iterations=iterations, device=device,
                      precision=precision, progress_factory=bars, train_progress=train_bar)
        rows = SSL_ALL_ROWS if every else SSL_DEFAULT_ROWS
        result = run_ssl_demo(out, strategies=rows, **common) if ssl else \
            run_demo(out, progressive=progressive, lesion_stage=lesion_stage, **common)
    console.print(coverage_table(result.report))
    console.print(results_table(result.results,
                                list(rows if ssl else (*DEMO_METHODS, PROGRESSIVE_ROW, LESION_STAGE_ROW))))
    name = "ssl_results.json" if ssl else "demo_results.json"

    console.print(f"results: [bold]{result.out / name}[/]   stages: {' -> '.join(result.stages_done)}")
    console.print(f"report: [bold]{write_report(result.out)}[/]")
