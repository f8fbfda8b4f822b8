"""The `unimos` command: its options and help, one function per command. What a command does once its options are
parsed lives in cli/data_commands.py and cli/model_commands.py, which each command calls with its parameters
(`**locals()`, the first statement, holds exactly those)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Optional

import typer

from unimos.cli.console import friendly_errors

app = typer.Typer(
    name="unimos",
    help="Train ONE multi-organ segmentation model from datasets annotated differently (full, partial, sparse, "
         "unlabeled).\n\nStart with:  unimos demo --out /tmp/unimos-demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
    "Network arithmetic: auto (bfloat16 where the hardware runs it natively, a CPU with AMX or AVX-512 BF16 or a "
    "recent GPU: 1.5-2x as fast; float32 elsewhere), float32, bfloat16, or float16 (CUDA only)."))]


def _data_commands() -> ModuleType:
    """The commands that read and write files without a network; imported when one runs, so that `unimos --help`
    loads neither them nor torch."""
    from unimos.cli import data_commands  # deferred: keeps `unimos --help` fast

    return data_commands


def _model_commands() -> ModuleType:
    """The commands that plan, train or run a network; imported when one runs (they load torch, ~1-2 s)."""
    from unimos.cli import model_commands  # deferred: torch loads only for the commands that need it

    return model_commands


@app.command("make-demo-data")
@friendly_errors
def make_demo_data_command(
    out: Annotated[Path, PathArgument(help="New or empty folder to write the collection into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer, coarser cases (for smoke tests).")] = False,
) -> None:
    """Write the built-in synthetic abdominal CT/MR collection and its manifest.

    Sources shaped like the public datasets: LiTS-, KiTS- and MSD-pancreas-like CTs (an organ and its tumour),
    MSD-spleen-like and vessel CTs, two BTCV-like CTs (every organ, no lesion), CHAOS-like MR, a sparsely labeled
    CT source, 12 unlabeled CTs and 5 held-out test CTs; liver, kidney and pancreas lesions in a share of every
    source's patients (complete labels kept in labels_complete/; the folder's README.md lists it all).

    Example:  unimos make-demo-data /tmp/d && unimos inspect /tmp/d/manifest.yaml
    """
    _data_commands().make_demo_data(**locals())


@app.command("inspect")
@friendly_errors
def inspect_command(manifest: ManifestArg, workers: WorkersOpt = 2) -> None:
    """Check every file of a manifest before any work and print coverage, modalities, spacing and sizes.

    All problems are listed at once (file, problem, fix); the exit code is 1 if there is any. Writes nothing.

    Example:  unimos inspect /tmp/d/manifest.yaml
    """
    _data_commands().inspect(**locals())


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
    _model_commands().plan(**locals())


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
    _model_commands().preprocess(**locals())


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
    _model_commands().train(**locals())


@app.command("predict")
@friendly_errors
def predict_command(
    checkpoint: Annotated[Path, PathArgument(help="Checkpoint (NAME, NAME.json or NAME.safetensors).")],
    inputs: Annotated[Path, PathArgument(help="An image file, a DICOM series folder, or a folder of them.")],
    out: Annotated[Path, PathOption(help="Folder for <case>.nii.gz label maps.")] = Path("unimos_predictions"),
    overlap: Annotated[float, typer.Option(min=0.0, max=0.95, help="Sliding-window overlap.")] = 0.5,
    mirror: Annotated[bool, typer.Option("--mirror", help="Mirror test-time augmentation (2^3 passes).")] = False,
    largest_component: Annotated[bool, typer.Option(help=(
        "Keep each organ's largest component (lesions keep all of theirs; a removed piece takes the class "
        "around it)."))] = True,
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
    lesion_model: Annotated[Optional[Path], PathOption(help=(
        "Run folder of a lesion stage (`unimos train --strategy lesion_crops`, same manifest and plan): it labels "
        "the lesions inside every organ CHECKPOINT finds that has lesion classes."))] = None,
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
              unimos predict work/run/checkpoint_final scans/ --lesion-model work/lesions
    """
    _model_commands().predict(**locals())


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
    _data_commands().evaluate(**locals())


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
    _data_commands().report(**locals())


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
    _model_commands().strategies(**locals())


@app.command("demo")
@friendly_errors
def demo_command(
    out: Annotated[Path, PathOption(help="New or empty folder for everything the demo writes.")] = Path("unimos-demo"),
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smaller data and budget: a smoke test of a few minutes.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for the data and every later stage.")] = 0,
    iterations: Annotated[Optional[int], typer.Option(
        help="Training steps per method (default 700 on every machine, quick 40; with --ssl 500 and 16).")] = None,
    progressive: Annotated[bool, typer.Option("--progressive", help=(
        "Also train the organ -> lesion pipeline of paper 004 (`--strategy progressive`: an organ stage and an "
        "organ + lesion stage of the row's iterations each, then the lesion stage on organ crops, 300 iterations "
        "per lesion group)."))] = False,
    lesion_stage: Annotated[bool, typer.Option("--lesion-stage", help=(
        "Also score the `partial` organ model with a lesion stage trained on the same labels (`--strategy "
        "lesion_crops`: one small network per lesion group on organ crops, 300 iterations each)."))] = False,
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
    The data: sources shaped like LiTS, KiTS, MSD pancreas and spleen, a vessel set, BTCV, CHAOS MR, a sparse and
    an unlabeled set, with liver, kidney and pancreas lesions. Writes OUT/demo_results.json ({method: {class: {dsc,
    nsd}, ..., mean, lesion_mean}}) and OUT/demo_meta.json (the recipe, CPU, precision, seconds).

    One recipe on every machine, so that the numbers do not depend on the CPU: 700 iterations per row, 48 x 48 x
    48 patches at 3 mm, batch 2, a 16-128 DynUNet with deep supervision, every row trained with paper 002's focal
    CE + merged Dice (naive: the same loss reading unannotated as background). With --precision auto (bfloat16 on AMX
    and AVX-512 BF16 CPUs) it took 10.2-10.7 minutes on 2 cores of an Intel Xeon with AMX; about 14 minutes are
    expected on an AMD EPYC with AVX-512 BF16 (a 1.4 times slower step; not yet measured there); 15.3-16.0 minutes
    on 2 cores of an Intel Xeon with AVX-512 but neither AMX nor AVX-512 BF16 (float32, 0.41-0.45 s a step); 32.3
    minutes on 2 cores of an AMD EPYC without AVX-512 (Zen 3: float32, 0.9 s a step; bfloat16 would be emulated, 48
    times slower); the float32 machines agree within 0.013 on each of 3 seeds. --progressive adds about 6 minutes
    with AMX for its two whole-volume stages, and 28 minutes on the Zen 3 AMD EPYC with its lesion stage;
    --lesion-stage 4-5 minutes there (3 networks of 300 iterations). Times: bench/README.md, "The demo's current
    recipe", "The demo's recipe" and "The progressive pipeline finds the demo's lesions".

    With --ssl: 1 labeled CT, 12 unlabeled CTs and 5 test CTs of the same phantom distribution; trains
    supervised-only, unimatch and `all_labeled` (the unlabeled CTs with their true labels: the ceiling of what they
    can add) for the same iterations, with --all every strategy (self_training, cps, guided_cps, mean_teacher too),
    and writes OUT/ssl_results.json with each row's seconds per iteration.

    Example:  unimos demo --out /tmp/unimos-demo --quick
              unimos demo --ssl --out /tmp/unimos-ssl
    """
    _model_commands().demo(**locals())


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
