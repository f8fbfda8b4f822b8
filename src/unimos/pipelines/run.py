"""A training run as library calls: the run folder's checks (an earlier run, --resume, --overwrite), training from a
cache (one training, or a registered pipeline of several), and one row of a comparison trained, predicted and scored."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from unimos.data.manifest import Manifest
from unimos.data.plan_spec import Plan
from unimos.errors import OutputError, UnimosError
from unimos.evaluation.evaluate import evaluate_predictions
from unimos.inference.lesion_stage import load_lesion_stage
from unimos.inference.model import load_model
from unimos.inference.predictor import PredictOptions, predict_files
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines.project import Progress
from unimos.pipelines.registry import PIPELINES
from unimos.preprocess.cache import open_cache
from unimos.training.config import TrainConfig
from unimos.training.loop import TrainResult, train
from unimos.utils.runtime import Runtime, resolve_runtime

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


def train_from_cache(cache_dir: str | Path, plan: Plan, config: TrainConfig, run_dir: str | Path,
                     resume: bool = False, progress: Callable[[int, int, float], None] | None = None,
                     overwrite: bool = False, runtime: Runtime | None = None) -> TrainResult:
    """Train on the cached cases of the configured splits; validation cases (if any) give validation Dice.
    `runtime`: the caller's resolved device and precision (None: resolved from `config`).

    An earlier run in `run_dir` is refused unless `resume` (continue it) or `overwrite`: it is then set aside and
    deleted once the new run ends, or put back if the new run fails before its first checkpoint."""
    run_dir = Path(run_dir)
    found = check_run_folder(run_dir, resume, overwrite)
    cached = open_cache(cache_dir, plan)
    cases = [c for c in cached if c.meta["split"] in config.train_splits]
    validation = [c for c in cached if c.meta["split"] == "validation" and c.meta["has_label"]]
    aside = _set_aside(run_dir, found) if found and overwrite else None
    runtime = runtime or resolve_runtime(config.device, config.precision)
    try:
        if config.strategy in PIPELINES.names():  # a pipeline of several trainings
            run = PIPELINES.get(config.strategy)
            result = run(cases, plan, config, run_dir, validation_cases=validation, resume=resume, progress=progress,
                         runtime=runtime)
        else:
            result = train(cases, plan, config, run_dir, validation_cases=validation, resume=resume,
                           progress=progress, runtime=runtime)
    except BaseException:
        if aside is not None:
            _settle(aside, run_dir, failed=True)
        raise
    if aside is not None:
        _settle(aside, run_dir, failed=False)
    return result


def train_and_score(name: str, cache_dir: Path, plan: Plan, manifest: Manifest, config: TrainConfig,
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
    runtime = resolve_runtime(config.device, config.precision)  # trains and predicts the row
    result = train_from_cache(cache_dir, plan, config, out / "runs" / name, resume=resume, overwrite=not resume,
                              progress=train_progress(name) if train_progress else None, runtime=runtime)
    seconds = time.perf_counter() - clock
    # a pipeline that trained a lesion stage too (progressive's stage 3) is scored with it
    summary = predict_and_score(name, result.checkpoint, manifest, out, runtime, step, score_split,
                                lesion_stage=getattr(result, "lesion_stage", None))
    return summary, seconds


def predict_and_score(name: str, checkpoint: Path, manifest: Manifest, out: Path, runtime: Runtime,
                      step: Callable[[str], Progress | None] = lambda _label: None, score_split: str = "test",
                      lesion_stage: Path | None = None) -> dict:
    """Predict the manifest's `score_split` cases with a checkpoint (and a lesion stage's folder, if given) into
    OUT/predictions/NAME and score them into OUT/evaluation/NAME; returns the evaluation summary."""
    model = load_model(checkpoint, device=runtime.device)
    lesions = None if lesion_stage is None else load_lesion_stage(lesion_stage, device=runtime.device)
    pred_dir = out / "predictions" / name
    records = []
    for modality, test_images in images_by_modality(manifest, score_split).items():
        # each case is read with the normalisation of the modality its manifest declares (what --modality says)
        options = PredictOptions(modality=modality, precision=runtime.precision_name)
        records += predict_files(model, test_images, pred_dir, options, progress=step(f"predict {name} {modality}"),
                                 overwrite=True, lesion_stage=lesions)
    failed = [r.error for r in records if r.error]
    if failed:
        raise UnimosError(pred_dir, f"prediction failed for {len(failed)} test case(s): {failed[0]}",
                          "see the message above; the demo data may be damaged, run the demo again")
    evaluate_predictions(pred_dir, manifest, out / "evaluation" / name, split=score_split)
    return json.loads((out / "evaluation" / name / "summary.json").read_text())


def images_by_modality(manifest: Manifest, split: str) -> dict[str, list[Path]]:
    """The first image of every case of `split`, grouped by the modality its source declares (sorted)."""
    groups: dict[str, set[Path]] = {}
    for case in manifest.split(split):
        groups.setdefault(case.modality, set()).add(Path(case.image_paths[0]))
    return {modality: sorted(groups[modality]) for modality in sorted(groups)}


def resolved_precision_name(precision: str, device: str) -> str:
    """What `precision` means on the device training resolves `device` to (float32 / bfloat16 / float16)."""
    return resolve_runtime(device, precision).precision_name
