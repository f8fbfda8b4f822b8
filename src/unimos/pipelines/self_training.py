"""The `self_training` pipeline (paper 001 section 2.3; paper 004 sections 2.3-2.4): teacher -> pseudo-labels ->
student, N rounds, each a run of the one training loop. Its options and documentation are the strategy registry's
(`strategies/self_training.py`).

Round 0 trains a teacher on the labeled cases with the one training loop. Each later round predicts every unlabeled
and (with `fuse_partial`) every partially labeled training case with the last round's model, keeps each organ's
largest component (paper 001: connected-component analysis against false positives), fuses the result with the known
annotation class by class (paper 004, eq. 5, restricted to the voxel's candidate set, docs/architecture.md),
optionally drops unconfident cases, writes each pseudo-labeled case as a new cache-format case (and as NIfTI +
provenance JSON for a viewer), and trains a student from scratch on the labeled and pseudo-labeled cases (paper 001:
"re-train the segmentation models from scratch"). The per-step loss is the supervised loss of the configured method.

Run folder: RUN/round_0/ (teacher run), RUN/round_<k>/ (student run, plus pseudo_cache/<case_id>/ and
pseudo_labels/<case_id>.nii.gz + .json + summary.json), RUN/self_training.json (what each round produced).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist

from unimos.data.plan_spec import Plan
from unimos.errors import UnimosError
from unimos.inference.model import load_model
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines.pseudo_labels import check_coarse_model, needs_pseudo_label, pseudo_label_cases
from unimos.pipelines.registry import PIPELINES
from unimos.preprocess.cache import CachedCase
from unimos.strategies.base import resolve_options
from unimos.strategies.self_training import SelfTraining
from unimos.training.config import TrainConfig
from unimos.training.loop import TrainResult, distributed_context, train
from unimos.training.validate import validation_dice
from unimos.utils.atomic import write_json_atomic
from unimos.utils.runtime import Runtime, resolve_runtime


@dataclass
class RoundResult:
    """One round: its run folder and final checkpoint, pseudo-labeled cases kept/dropped, validation Dice."""

    round: int
    run_dir: Path
    checkpoint: Path
    steps: int
    seconds: float
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    val_dice: dict[int, float] = field(default_factory=dict)


@dataclass
class SelfTrainingResult(TrainResult):
    """A `TrainResult` whose checkpoint is the last round's (what to predict with), plus every round."""

    rounds: list[RoundResult] = field(default_factory=list)


def self_training_options(config: TrainConfig) -> dict[str, Any]:
    """The strategy's options with defaults, checked (an unknown or out-of-range option is a readable error)."""
    if config.strategy != "self_training":
        raise UnimosError("--strategy", f"run_self_training needs strategy 'self_training', got '{config.strategy}'",
                          "train other strategies with `train`")
    return resolve_options("SelfTraining", SelfTraining.defaults, config.strategy_options, SelfTraining.limits)


def distributed_rank() -> int:
    """This process's rank under torchrun (0 otherwise); validation and summaries are rank 0's work."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _round_validation(result: TrainResult, validation_cases: Sequence[CachedCase],
                      runtime: Runtime) -> dict[int, float]:
    """The round's validation Dice: the loop's last one when it validated, else the final checkpoint's."""
    if result.val_dice or not validation_cases or distributed_rank() != 0:
        return dict(result.val_dice)

    model = load_model(result.checkpoint, device=runtime.device)
    return validation_dice(model.network, validation_cases, model.meta["patch_size"], runtime.device,
                           runtime.precision)


@PIPELINES.register("self_training")
def run_self_training(cases: Sequence[CachedCase], plan: Plan, config: TrainConfig, run_dir: str | Path,
                      validation_cases: Sequence[CachedCase] = (), resume: bool = False,
                      progress: Callable[[int, int, float], None] | None = None,
                      runtime: Runtime | None = None) -> SelfTrainingResult:
    """Teacher (round 0), then `rounds` students trained from scratch by `train` (paper 001 2.3, paper 004 2.3-2.4).

    `progress(step, total, loss)` counts over all rounds; `resume` reuses finished rounds and continues a broken one.
    """
    options = self_training_options(config)
    rounds = int(options["rounds"])
    run_dir = Path(run_dir)
    runtime = runtime or resolve_runtime(config.device, config.precision)  # once: every round and pseudo-label pass
    if options["coarse"]:  # refused before the teacher trains, not after

        check_coarse_model(load_model(options["coarse"], device="cpu"), plan, options["coarse"], config.slice_resize)
    total = config.iterations * (rounds + 1)
    rank, world = distributed_context()

    def round_progress(index: int) -> Callable[[int, int, float], None] | None:
        if progress is None:
            return None
        return lambda done, _total, loss: progress(index * config.iterations + done, total, loss)

    def run_round(index: int, round_cases: list[CachedCase], round_config: TrainConfig) -> TrainResult:
        round_dir = run_dir / f"round_{index}"
        final = round_dir / "checkpoint_final"
        if resume and final.with_suffix(".json").exists():
            read_checkpoint_meta(final)  # refuses a damaged one
            if progress is not None:
                progress((index + 1) * config.iterations, total, float("nan"))
            return TrainResult(round_dir, final, 0, 0.0, 0.0)
        again = resume and (round_dir / "checkpoint_latest.json").exists()
        return train(round_cases, plan, round_config, round_dir, validation_cases=validation_cases, resume=again,
                     progress=round_progress(index), within_pipeline=True, runtime=runtime)

    begun = time.perf_counter()
    labeled = [c for c in cases if c.meta["has_label"]]
    targets = [c for c in cases if needs_pseudo_label(c, bool(options["fuse_partial"]))]
    if not targets:
        raise UnimosError(run_dir, "self-training found no unlabeled or partially labeled training case to "
                          "pseudo-label", "add unlabeled cases to the training split, or use --strategy supervised")
    target_ids = {c.case_id for c in targets}
    teacher_config = replace(config, strategy="supervised", strategy_options={})
    result = run_round(0, labeled, teacher_config)
    rounds_done = [RoundResult(0, result.run_dir, result.checkpoint, result.steps, result.seconds,
                               val_dice=_round_validation(result, validation_cases, runtime))]
    waits = [result.data_wait_share]
    for index in range(1, rounds + 1):
        round_dir = run_dir / f"round_{index}"
        finished = resume and (round_dir / "checkpoint_final.json").exists() \
            and (round_dir / "pseudo_labels" / "summary.json").exists()
        if rank == 0 and not finished:
            pseudo_label_cases(targets, result.checkpoint, plan, round_dir, index, options, runtime)
        if world > 1:
            dist.barrier()
        summary = json.loads((round_dir / "pseudo_labels" / "summary.json").read_text())
        kept = set(summary["kept"])
        pseudo_cases = [CachedCase(round_dir / "pseudo_cache" / cid,
                                   json.loads((round_dir / "pseudo_cache" / cid / "meta.json").read_text()))
                        for cid in sorted(kept)]
        # A pseudo-labeled case replaces its original; a dropped partial case trains on its own annotation.
        student_cases = [c for c in labeled if c.case_id not in kept] + pseudo_cases
        result = run_round(index, student_cases, config)
        waits.append(result.data_wait_share)
        rounds_done.append(RoundResult(index, result.run_dir, result.checkpoint, result.steps, result.seconds,
                                       sorted(kept), sorted(target_ids - kept),
                                       _round_validation(result, validation_cases, runtime)))
    final = SelfTrainingResult(run_dir, result.checkpoint, sum(r.steps for r in rounds_done),
                               time.perf_counter() - begun, float(np.mean(waits)), rounds_done[-1].val_dice,
                               list(result.losses), rounds_done)
    if rank == 0:
        write_json_atomic(run_dir / "self_training.json", {
            "options": options, "checkpoint": str(final.checkpoint),
            "rounds": [{**asdict(r), "run_dir": str(r.run_dir), "checkpoint": str(r.checkpoint),
                        "val_dice": {str(k): v for k, v in r.val_dice.items()}} for r in rounds_done]})
    return final
