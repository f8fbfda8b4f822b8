"""The `unimos` command: make-demo-data, inspect, plan, preprocess, demo."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from unimos.cli.render import coverage_table, geometry_tables, print_problems, progress_bars, results_table
from unimos.errors import UnimosError, ValidationFailed

app = typer.Typer(
    name="unimos",
    help="Train ONE multi-organ segmentation model from datasets annotated differently (full, partial, sparse, "
         "unlabeled).\n\nStart with:  unimos demo --out /tmp/unimos-demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Logs and pipes get a wide fixed width so the coverage table is not squeezed to 80 columns.
console = Console(highlight=False, width=None if Console().is_terminal else 160)
err_console = Console(stderr=True, highlight=False, width=None if Console(stderr=True).is_terminal else 160)
F = TypeVar("F", bound=Callable[..., Any])

# Paths are checked by unimos itself (one message naming the file, the problem and the fix), not by typer's usage box.
PathArgument = functools.partial(typer.Argument, readable=False)
PathOption = functools.partial(typer.Option, readable=False)
ManifestArg = Annotated[Path, PathArgument(help="A manifest.yaml, or an nnU-Net v2 raw folder or MSD task folder.")]
AllowInsideOpt = Annotated[bool, typer.Option("--allow-output-in-input",
                                              help="Allow writing inside a folder that holds input scans.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Parallel workers (processes or threads).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help=(
    "Replace outputs that an earlier run wrote (without it, existing results are never replaced)."))]
PrecisionOpt = Annotated[str, typer.Option(help=(
    "Network arithmetic: auto (bfloat16 where the hardware runs it natively, a CPU with AMX or a recent GPU: "
    "about twice as fast; float32 elsewhere), float32, bfloat16, or float16 (CUDA only)."))]


def parse_key_values(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values read as YAML scalars (0.9 -> float, true -> bool, text stays text)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UnimosError("--strategy-option", f"'{item}' is not KEY=VALUE", "write it like tau=0.9")
        options[key.strip()] = yaml.safe_load(value)
    return options


TRACEBACK_ENV = "UNIMOS_TRACEBACK"  # set to 1 to see the traceback of an unexpected error


def _unexpected(err: Exception) -> str:
    """One line for an error no check foresaw: what happened and what to do."""
    if isinstance(err, MemoryError):
        return ("ran out of memory. Fix: run it on a machine with more memory, or lower its size (--batch-size, "
                "--memory-budget-gib, a smaller plan)")
    if isinstance(err, OSError):
        return (f"the system refused an operation ({err.strerror or err}{f': {err.filename}' if err.filename else ''})"
                ". Fix: check free disk space and permissions of the files and folders named")
    return (f"unexpected {type(err).__name__}: {err}. Fix: this is a bug in unimos; please report it with the "
            f"command line, and run it again with {TRACEBACK_ENV}=1 to see where it happened")


def friendly_errors(command: F) -> F:
    """Print UnimosErrors as readable paragraphs (no traceback) and exit non-zero."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ValidationFailed as err:
            print_problems(err_console, err.problems)
            raise typer.Exit(code=1) from None
        except UnimosError as err:
            err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished files are kept; nothing half-written is left.")
            raise typer.Exit(code=130) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as err:  # a bug or the machine, not the user's input: still one message, no traceback
            if os.environ.get(TRACEBACK_ENV):
                raise
            err_console.print("[bold red]error:[/] unimos "
                              f"{command.__name__.removesuffix('_command').replace('_', '-')}"
                              f": {_unexpected(err)}", soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


@app.command("make-demo-data")
@friendly_errors
def make_demo_data_command(
    out: Annotated[Path, PathArgument(help="New or empty folder to write the collection into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer, coarser cases (for smoke tests).")] = False,
) -> None:
    """Write the built-in synthetic abdominal CT/MR collection and its manifest.

    Sources: fully, partially and sparsely labeled CT, a partial MR set, unlabeled CT and a held-out test set
    (complete labels kept in labels_complete/).

    Example:  unimos make-demo-data /tmp/d && unimos inspect /tmp/d/manifest.yaml
    """
    from unimos.data.demo import make_demo_data

    manifest = make_demo_data(out, seed=seed, quick=quick)
    console.print(f"wrote [bold]{manifest}[/]")


@app.command("inspect")
@friendly_errors
def inspect_command(manifest: ManifestArg, workers: WorkersOpt = 2) -> None:
    """Check every file of a manifest before any work and print coverage, modalities, spacing and sizes.

    All problems are listed at once (file, problem, fix); the exit code is 1 if there is any. Writes nothing.

    Example:  unimos inspect /tmp/d/manifest.yaml
    """
    from unimos.data.manifest import load_manifest
    from unimos.data.validation import inspect_manifest

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


@app.command("plan")
@friendly_errors
def plan_command(
    manifest: ManifestArg,
    out: Annotated[Path, PathOption(help="Where to write the plan JSON.")] = Path("unimos_work/plan_3mm.json"),
    preset: Annotated[str, typer.Option(help=(
        "'3mm' (fast, 3 mm isotropic), '3mm-small' (narrower net, CPU demo), 'fine' (median spacing) "
        "or 'coarse' (6 mm, the first stage of a cascade: predict --coarse)."))] = "3mm",
    seed: Annotated[int, typer.Option(help="Seed for intensity sampling.")] = 0,
    workers: WorkersOpt = 2,
    overwrite: OverwriteOpt = False,
) -> None:
    """Derive a plan (target spacing, patch size, normalisation, network size) from the data fingerprint.

    The manifest is inspected first; the plan is a JSON file you may read and edit, with a hash. An existing plan
    at --out is replaced only when it is the same plan, or with --overwrite.

    Example:  unimos plan /tmp/d/manifest.yaml --out work/plan_3mm.json --preset 3mm
    """
    from unimos.workflow import checked_manifest, plan_manifest

    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        plan = plan_manifest(loaded, out, preset, seed=seed, workers=workers, progress=bars("fingerprint"),  # type: ignore[arg-type]
                             overwrite=overwrite)
    console.print(f"wrote [bold]{out}[/] (hash {plan['hash']}): spacing {plan['target_spacing_mm']} mm, "
                  f"patch {plan['patch_size']}, {len(plan['network']['strides'])} stages, "
                  f"filters {plan['network']['filters']}")


@app.command("preprocess")
@friendly_errors
def preprocess_command(
    manifest: ManifestArg,
    plan: Annotated[Path, PathOption(help="Plan JSON written by `unimos plan`.")] = Path("unimos_work/plan_3mm.json"),
    cache: Annotated[Path, PathOption(
        help="Cache folder (arrays are stored under its plan key).")] = Path("unimos_work/cache"),
    workers: WorkersOpt = 2,
    allow_output_in_input: AllowInsideOpt = False,
) -> None:
    """Reorient, resample, crop and normalise every case into the on-disk cache; cached cases are skipped.

    Example:  unimos preprocess /tmp/d/manifest.yaml --plan work/plan_3mm.json --cache work/cache
    """
    from unimos.preprocess.cache import preprocess_manifest
    from unimos.preprocess.plan import load_plan
    from unimos.workflow import (
        check_output_folder,
        checked_manifest,
        manifest_input_folders,
        refuse_output_inside_inputs,
    )

    loaded_plan = load_plan(plan)
    check_output_folder(cache, "--cache")
    with progress_bars(err_console) as bars:
        loaded, _ = checked_manifest(manifest, workers=workers, progress=bars("inspect"))
        refuse_output_inside_inputs(cache, manifest_input_folders(loaded), "--cache", allow_output_in_input)
        done, skipped = preprocess_manifest(loaded, loaded_plan, cache, workers=workers,
                                            progress=bars("preprocess"))
    console.print(f"preprocessed {done} case(s), {skipped} already cached, in "
                  f"[bold]{Path(cache) / loaded_plan['cache_key']}[/]")


@app.command("train")
@friendly_errors
def train_command(
    manifest: ManifestArg,
    out: Annotated[Path, PathOption(help="Run folder: checkpoints, log.csv, config.json.")] = Path("unimos_work/run"),
    plan: Annotated[Path, PathOption(help="Plan JSON written by `unimos plan`.")] = Path("unimos_work/plan_3mm.json"),
    cache: Annotated[Path, PathOption(
        help="Cache folder of `unimos preprocess` (filled if needed).")] = Path("unimos_work/cache"),
    method: Annotated[str, typer.Option(help="Loss: partial, partial_focal_dice, naive, ignore.")] = "partial",
    strategy: Annotated[str, typer.Option(help="supervised, or a semi-supervised one that also learns from unlabeled "
                                                "cases: unimatch, self_training, cps, guided_cps, mean_teacher "
                                                "(their options: `unimos strategies NAME`).")] = "supervised",
    strategy_option: Annotated[Optional[list[str]], typer.Option(
        help="A strategy option as KEY=VALUE, repeatable (e.g. --strategy-option tau=0.9); `unimos strategies NAME` "
             "lists each option with its default and valid values.")] = None,
    network: Annotated[str, typer.Option(help="Network: dynunet (3D) or pipofan2d.")] = "dynunet",
    iterations: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 500,
    sampler: Annotated[str, typer.Option(help="cmd (class->modality->dataset), mdc or random.")] = "cmd",
    foreground_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of class-centred patches.")] = 0.9,
    roi_margin_mm: Annotated[Optional[float], typer.Option(min=0.0, help=(
        "Keep random patches within this many mm of the labeled organs: the fine stage of a cascade, predicted "
        "with `predict --coarse` (default: anywhere)."))] = None,
    slice_resize: Annotated[int, typer.Option(min=0, help=(
        "2D networks: resize every axial slice to N x N pixels, in training and prediction (UniMOS: 256; "
        "0: the plan's grid)."))] = 0,
    slice_patch: Annotated[int, typer.Option(min=0, help=(
        "Side of the training crop from a resized slice (0: 7/8 of --slice-resize, UniMOS's 224)."))] = 0,
    batch_size: Annotated[int, typer.Option(min=0, help="Patches per step (0: the plan's).")] = 0,
    deep_supervision: Annotated[bool, typer.Option(
        "--deep-supervision", help="Supervise coarser outputs too.")] = False,
    optimizer: Annotated[str, typer.Option(help="adamw, sgd or rmsprop.")] = "adamw",
    learning_rate: Annotated[float, typer.Option(help="Initial learning rate.")] = 3e-3,
    schedule: Annotated[str, typer.Option(help="poly or step.")] = "poly",
    seed: Annotated[int, typer.Option(help="Seed for initialisation, sampling and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: PrecisionOpt = "auto",
    validate_every: Annotated[int, typer.Option(help="Validation Dice every N steps (0: never).")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 100,
    log_every: Annotated[int, typer.Option(min=1, help="A row of OUT/log.csv every N steps.")] = 10,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log to OUT/tensorboard (needs the optional "
                                              "package: pip install 'unimos[tensorboard]').")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint_latest.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=(
        "Replace the run already in --out (its checkpoints, log and config are deleted first)."))] = False,
    workers: WorkersOpt = 2,
    allow_output_in_input: AllowInsideOpt = False,
) -> None:
    """Train one model on every training case of the manifest, whatever each source annotates.

    Example:  unimos train /tmp/d/manifest.yaml --plan work/plan_3mm.json --cache work/cache --out work/run
              unimos train /tmp/d/manifest.yaml --strategy unimatch --strategy-option tau=0.9 --out work/run_ssl
              unimos train /tmp/d/manifest.yaml --network pipofan2d --slice-resize 256 --out work/run_2d
    """
    from unimos.preprocess.cache import preprocess_manifest
    from unimos.preprocess.plan import load_plan
    from unimos.strategies.base import check_strategy_options
    from unimos.training.config import TrainConfig
    from unimos.training.loop import check_config
    from unimos.utils.precision import check_precision
    from unimos.workflow import (
        check_output_folder,
        check_run_folder,
        checked_manifest,
        manifest_input_folders,
        refuse_output_inside_inputs,
        train_from_cache,
    )

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


@app.command("predict")
@friendly_errors
def predict_command(
    checkpoint: Annotated[Path, PathArgument(help="Checkpoint (NAME, NAME.json or NAME.safetensors).")],
    inputs: Annotated[Path, PathArgument(help="An image file, a DICOM series folder, or a folder of them.")],
    out: Annotated[Path, PathOption(help="Folder for <case>.nii.gz label maps.")] = Path("unimos_predictions"),
    overlap: Annotated[float, typer.Option(min=0.0, max=0.95, help="Sliding-window overlap.")] = 0.5,
    mirror: Annotated[bool, typer.Option("--mirror", help="Mirror test-time augmentation (2^3 passes).")] = False,
    largest_component: Annotated[bool, typer.Option(help="Keep each organ's largest component.")] = True,
    modality: Annotated[Optional[str], typer.Option(help="CT or MR, when the model knows several.")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip cases whose output exists.")] = False,
    output_format: Annotated[str, typer.Option(
        "--format", help="nifti (default), seg-nrrd (3D Slicer segmentation, named and coloured segments) or "
                         "dicom-seg (DICOM SEG referencing the input series; DICOM inputs only).")] = "nifti",
    memory_budget_gib: Annotated[Optional[float], typer.Option(
        min=0.1, help="Refuse, before reading it, a scan whose estimated peak memory exceeds this (GiB).")] = None,
    window: Annotated[str, typer.Option(
        "--window", help="patch (default): the plan's patch, Gaussian-weighted sliding windows as in training. "
                         "auto: the fewest, largest windows (up to the whole volume) that fit --memory-budget-gib "
                         "(3 GiB if not given): about 4x less compute for a 3 mm abdomen, but the network "
                         "normalises over larger windows than in training, which can lower accuracy; check it on "
                         "your model.")] = "patch",
    coarse: Annotated[Optional[Path], PathOption(help=(
        "Checkpoint of a coarse model (plan preset 'coarse', same manifest): it finds the organs' region on the "
        "whole scan and CHECKPOINT runs only inside it (coarse-to-fine cascade)."))] = None,
    roi_margin_mm: Annotated[float, typer.Option(min=0.0, help="With --coarse: margin around the region (mm).")] = 20.0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    precision: PrecisionOpt = "auto",
    force: Annotated[bool, typer.Option("--force", help=(
        "Predict scans that fail the intensity or shape checks (e.g. a CT not in Hounsfield units, an MR given to a "
        "CT model) anyway; each such case gets a warning in predict_log.json."))] = False,
    overwrite: OverwriteOpt = False,
    allow_output_in_input: AllowInsideOpt = False,
) -> None:
    """Segment every organ of the model's taxonomy in one pass; outputs keep each input's exact geometry.

    Example:  unimos predict work/run/checkpoint_final scans/ --out predictions/
              unimos predict work/run/checkpoint_final scans/ --coarse work/run_coarse/checkpoint_final
    """
    from unimos.data.io import list_inputs
    from unimos.inference.predictor import PredictOptions, load_model, predict_files
    from unimos.workflow import refuse_output_inside_inputs

    files = list_inputs(inputs)
    folders = {inputs if inputs.is_dir() else inputs.parent} | {f if f.is_dir() else f.parent for f in files}
    refuse_output_inside_inputs(out, sorted(folders), "--out", allow_output_in_input)
    options = PredictOptions(overlap=overlap, mirror=mirror, largest_component=largest_component, modality=modality,
                             memory_budget_gib=memory_budget_gib, output_format=output_format, window=window,
                             precision=precision, force=force)
    from unimos.training.loop import resolve_device

    resolve_device(device)  # a missing GPU is the user's to fix, named before the model is read
    model = load_model(checkpoint, device)
    first_stage = load_model(coarse, device) if coarse is not None else None
    with progress_bars(err_console) as bars:
        records = predict_files(model, files, out, options, skip_existing=skip_existing, progress=bars("predict"),
                                coarse=first_stage, roi_margin_mm=roi_margin_mm, overwrite=overwrite)
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


@app.command("evaluate")
@friendly_errors
def evaluate_command(
    predictions: Annotated[Path, PathArgument(help="Folder of <case_id>.nii.gz predictions.")],
    manifest: ManifestArg,
    out: Annotated[Optional[Path], PathOption(help="Where scores go (default: PREDICTIONS/evaluation).")] = None,
    split: Annotated[str, typer.Option(help="train, validation, test, or all.")] = "test",
    tolerance_mm: Annotated[float, typer.Option(help="NSD tolerance in mm (> 0).")] = 2.0,
    report: Annotated[bool, typer.Option(help="Also write OUT/report/index.html with figures.")] = True,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help=(
        "Score the cases that have a prediction when some have none (they are listed in summary.md)."))] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Score predictions (DSC, NSD, HD95) only on what each reference annotates.

    Classes are matched by name through PREDICTIONS/labels.json (written by `unimos predict`) when it exists.

    Example:  unimos evaluate predictions/ /tmp/d/manifest.yaml --split test
    """
    from unimos.data.manifest import load_manifest
    from unimos.evaluation.evaluate import EVALUATION_OUTPUTS, check_tolerance, evaluate_predictions
    from unimos.workflow import refuse_existing_outputs

    check_tolerance(tolerance_mm)
    target = out or predictions / "evaluation"
    refuse_existing_outputs(target, EVALUATION_OUTPUTS, overwrite, "an earlier evaluation")
    loaded = load_manifest(manifest)
    evaluate_predictions(predictions, loaded, target, split=None if split == "all" else split,
                         tolerance_mm=tolerance_mm, allow_missing=allow_missing)
    console.print((target / "summary.md").read_text())
    console.print(f"scores in [bold]{target}[/]")
    if report:
        from unimos.report.html import write_report

        console.print(f"report: [bold]{write_report(target, manifest=manifest, predictions=predictions)}[/]")


@app.command("report")
@friendly_errors
def report_command(
    run_dir: Annotated[Path, PathArgument(help=(
        "A `unimos demo` folder, a `unimos evaluate` output folder or a `unimos train` run folder."))],
    out: Annotated[Optional[Path], PathOption(help="Report folder (default: RUN_DIR/report).")] = None,
    max_cases: Annotated[int, typer.Option(min=1, help="Case montages to draw, worst first.")] = 12,
) -> None:
    """One self-contained HTML page: coverage, training curves, per-organ results, case montages (worst first).

    Example:  unimos report unimos-demo      (then open unimos-demo/report/index.html in any browser)
    """
    from unimos.report.html import write_report

    console.print(f"report: [bold]{write_report(run_dir, out, max_cases=max_cases)}[/]")


@app.command("strategies")
@friendly_errors
def strategies_command(
    name: Annotated[Optional[str], typer.Argument(help="One strategy (default: every one).")] = None,
) -> None:
    """The training strategies and their options (for `unimos train --strategy NAME --strategy-option KEY=VALUE`):
    default, valid values, what each does, and the paper and released code each follows.

    Example:  unimos strategies unimatch
              unimos train data/manifest.yaml --strategy unimatch --strategy-option tau=0.9 --out work/run_ssl
    """
    from unimos.cli.render import strategy_table
    from unimos.strategies import STRATEGIES
    from unimos.strategies.base import option_docs

    for key in [name] if name else STRATEGIES.names():
        cls = STRATEGIES.get(key)
        console.print(strategy_table(key, cls.summary, cls.source, option_docs(key)))


@app.command("demo")
@friendly_errors
def demo_command(
    out: Annotated[Path, PathOption(help="New or empty folder for everything the demo writes.")] = Path("unimos-demo"),
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smaller data and budget: a smoke test of a few minutes.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for the data and every later stage.")] = 0,
    iterations: Annotated[Optional[int], typer.Option(
        help="Training steps per method (default 700, or 1100 where bfloat16 runs natively; quick 40; with --ssl "
             "500 and 16).")] = None,
    ssl: Annotated[bool, typer.Option("--ssl", help=(
        "Compare semi-supervised training instead, where labels are scarce (1 labeled CT, 12 unlabeled): "
        "supervised, unimatch and the all_labeled ceiling."))] = False,
    every: Annotated[bool, typer.Option("--all", help="With --ssl: every strategy (about 3 times as long).")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: PrecisionOpt = "auto",
    workers: WorkersOpt = 2,
) -> None:
    """Run unimos end to end on built-in synthetic data and compare methods at one budget.

    make data -> inspect -> plan (3 mm) -> preprocess -> train `partial` (candidate-set losses), `naive`
    (unannotated = background) and `upper_bound` (complete labels) -> predict the held-out test set -> evaluate.
    Writes OUT/demo_results.json ({method: {organ: {dsc, nsd}, ..., mean}}) and OUT/demo_meta.json.

    With --ssl: 1 labeled CT, 12 unlabeled CTs and 5 test CTs of the same phantom distribution; trains
    supervised-only, unimatch and `all_labeled` (the unlabeled CTs with their true labels: the ceiling of what they
    can add) for the same iterations, with --all every strategy (self_training, cps, guided_cps, mean_teacher too),
    and writes OUT/ssl_results.json with each row's seconds per iteration.

    Example:  unimos demo --out /tmp/unimos-demo --quick
              unimos demo --ssl --out /tmp/unimos-ssl
    """
    from unimos.utils.precision import check_precision
    from unimos.workflow import DEMO_METHODS, SSL_ALL_ROWS, SSL_DEFAULT_ROWS, run_demo, run_ssl_demo

    check_precision(precision)
    if every and not ssl:
        raise UnimosError("--all", "chooses the rows of the semi-supervised comparison only",
                          "add --ssl, or drop --all")
    with progress_bars(err_console) as bars:
        def train_bar(method: str):
            return bars(f"train {method}")

        common = dict(quick=quick, seed=seed, workers=workers, iterations=iterations, device=device,
                      precision=precision, progress_factory=bars, train_progress=train_bar)
        rows = SSL_ALL_ROWS if every else SSL_DEFAULT_ROWS
        result = run_ssl_demo(out, strategies=rows, **common) if ssl else run_demo(out, **common)
    console.print(coverage_table(result.report))
    console.print(results_table(result.results, list(rows if ssl else DEMO_METHODS)))
    name = "ssl_results.json" if ssl else "demo_results.json"
    from unimos.report.html import write_report

    console.print(f"results: [bold]{result.out / name}[/]   stages: {' -> '.join(result.stages_done)}")
    console.print(f"report: [bold]{write_report(result.out)}[/]")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
