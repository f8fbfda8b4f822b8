"""The `progressive` pipeline (paper 004, PWS-Seg, Algorithm 1): organs first, then organs and lesions.

Stage 1 (organ stage, RUN/stage_1/) trains on every labeled case with each lesion read as the organ around it
(`lesion_stages.lesions_as_organs`), in a taxonomy without lesion classes. Its predictions then complete the organs
that each case does not annotate, fused class by class with what the case does annotate (paper 004, eq. 5; a known
label is never overridden), written as new cache-format cases whose candidate sets keep each organ's lesion open
where the case did not annotate it (RUN/stage_2/pseudo_cache, NIfTI + provenance in RUN/stage_2/pseudo_labels).
Lesion-source cases without a lesion voxel are left out (the paper abandons them). Stage 2 (organ + lesion stage,
RUN/stage_2/) trains on the fused cases in the project's full taxonomy. Stage 3 (option `lesion_stage`, on by
default; RUN/stage_3/) is the lesion stage on organ crops (pipelines/lesion_crops.py) on the labeled training cases:
trained on the whole abdomen, stage 2 finds none of the demo's lesions, the crops do (bench/README.md). Predict with
`unimos predict RUN/stage_2/checkpoint_final --lesion-model RUN/stage_3`. RUN/progressive.json records the stages.

The paper trains each stage twice and its organ stage with cross supervision; here each stage is one run of the
training loop with the supervised step (candidate-set loss), a simplification stated in `unimos strategies`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from unimos.data.plan_spec import ClassSpec, Plan
from unimos.data.taxonomy import Taxonomy
from unimos.errors import UnimosError
from unimos.inference.lesion_stage import STAGE_FILE, lesion_groups
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines.lesion_crops import check_lesion_crops, train_lesion_stage
from unimos.pipelines.lesion_stages import (
    abandoned,
    lesion_stage_classes,
    lesions_as_organs,
    organ_stage_table,
    organ_taxonomy,
)
from unimos.pipelines.pseudo_labels import needs_pseudo_label, pseudo_label_cases
from unimos.pipelines.registry import PIPELINES
from unimos.preprocess.cache import CachedCase, write_cached_case
from unimos.preprocess.plan import plan_taxonomy, with_hashes
from unimos.strategies.base import resolve_options
from unimos.strategies.progressive import Progressive
from unimos.training.config import TrainConfig
from unimos.training.loop import TrainResult, distributed_context, train
from unimos.utils.atomic import write_json_atomic
from unimos.utils.runtime import Runtime, resolve_runtime


@dataclass
class ProgressiveResult(TrainResult):
    """The organ + lesion stage's result (its checkpoint is the run's model) and what each stage used."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    lesion_stage: Path | None = None  # RUN/stage_3 (the lesion stage's folder), when trained


def progressive_options(config: TrainConfig) -> dict[str, Any]:
    """The progressive options with the registry's defaults filled in and checked."""
    return resolve_options("Progressive", Progressive.defaults, config.strategy_options, Progressive.limits)


def organ_plan(plan: Plan, taxonomy: Taxonomy) -> Plan:
    """The organ stage's plan: the project's plan with the lesion classes left out (new hashes)."""
    organs = organ_taxonomy(taxonomy)
    return with_hashes(plan.model_copy(update={"classes": [ClassSpec(name=n, parents=[]) for n in organs.names[1:]]}))


def organ_case(case: CachedCase, taxonomy: Taxonomy, folder: Path) -> CachedCase:
    """A case of the organ stage (the cache writer's format): lesions read as organs, the organ stage's candidate
    table; the image is the original's (linked, not copied)."""
    meta = {k: v for k, v in case.meta.items() if k != "input_signature"}
    annotated = [int(i) for i in case.meta.get("annotated_classes", [])]
    organs = organ_taxonomy(taxonomy)
    table = organ_stage_table(taxonomy, annotated)
    meta.update({"candidate_table": table.astype(int).tolist(),
                 "annotated_classes": [organs.index(taxonomy.names[i]) for i in annotated
                                       if taxonomy.names[i] in organs.names]})
    arrays: dict[str, np.ndarray] = {}
    label = case.label()
    if label is not None:
        region = case.region()
        labels, known = lesions_as_organs(np.asarray(label), np.ones(label.shape, bool) if region is None
                                          else np.asarray(region), taxonomy)
        arrays = {"label": labels, "region": known}
    return write_cached_case(folder, meta, arrays, image_from=case.folder)


@PIPELINES.register("progressive")
def run_progressive(cases: Sequence[CachedCase], plan: Plan, config: TrainConfig, run_dir: str | Path,
                    validation_cases: Sequence[CachedCase] = (), resume: bool = False,
                    progress: Callable[[int, int, float], None] | None = None,
                    runtime: Runtime | None = None) -> ProgressiveResult:
    """Organ stage, fused organ pseudo-labels, organ + lesion stage (paper 004), then the lesion stage on organ
    crops (option `lesion_stage`); `progress` counts every stage's iterations."""
    options = progressive_options(config)
    run_dir = Path(run_dir)
    runtime = runtime or resolve_runtime(config.device, config.precision)
    taxonomy = plan_taxonomy(plan)
    if not any(c.parents for c in taxonomy.classes):
        raise UnimosError("--strategy progressive", "the project has no lesion class (a class inside an organ, e.g. "
                          "liver_tumor)", "add the lesion classes to project.classes, or use --strategy supervised")
    rank, world = distributed_context()
    if world > 1:
        raise UnimosError("--strategy progressive", "runs on one process only for now",
                          "run it without torchrun")
    if options["lesion_stage"]:  # refused now, not after the first two stages have trained
        check_lesion_crops([c for c in cases if c.meta["has_label"]], taxonomy)
    begun = time.perf_counter()
    first_plan = organ_plan(plan, taxonomy)
    stage_dir = run_dir / "stage_1"
    first_cases = [organ_case(c, taxonomy, stage_dir / "organ_cache" / c.case_id) for c in cases]
    lesion_iterations = int(options["lesion_iterations"]) or config.iterations
    total = 2 * config.iterations + (len(lesion_groups(taxonomy)) * lesion_iterations if options["lesion_stage"] else 0)
    first = _stage(1, [c for c in first_cases if c.meta["has_label"]], first_plan, config, stage_dir, (),
                   resume, progress, runtime, total)

    targets = {c.case_id for c in first_cases if needs_pseudo_label(c, True)}
    kept = [c for c in cases if not abandoned(c.label(), taxonomy, c.meta.get("annotated_classes", []))
            or not options["drop_empty_lesion"]]
    dropped = sorted({c.case_id for c in cases} - {c.case_id for c in kept})
    second_dir = run_dir / "stage_2"
    organ_index = [taxonomy.index(n) for n in organ_taxonomy(taxonomy).names]
    pseudo = pseudo_label_cases(
        [c for c in kept if c.case_id in targets], first.checkpoint, plan, second_dir, 1,
        {"largest_component": options["largest_component"], "min_confidence": 0.0, "coarse": ""}, runtime,
        project_index=organ_index,
        known_of=lambda case: lesion_stage_classes(taxonomy, case.meta.get("annotated_classes", [])))
    fused = {record.case_id: case for record, case in pseudo if case is not None}
    second_cases = [fused.get(c.case_id, c) for c in kept]
    second = _stage(2, second_cases, plan, config, second_dir, validation_cases, resume, progress, runtime, total)
    third = None
    if options["lesion_stage"]:
        report = None if progress is None else \
            (lambda done, _total, loss: progress(2 * config.iterations + done, total, loss))
        third = train_lesion_stage(cases, plan, replace(config, iterations=lesion_iterations, strategy="supervised",
                                                        strategy_options={}),
                                   run_dir / "stage_3", progress=report, runtime=runtime, resume=resume)

    stages = [{"stage": 1, "name": "organs (lesions read as their organ)", "classes": first_plan.to_json()["classes"],
               "run_dir": str(first.run_dir), "checkpoint": str(first.checkpoint),
               "cases": [c.case_id for c in first_cases if c.meta["has_label"]]},
              {"stage": 2, "name": "organs + lesions", "classes": plan.to_json()["classes"],
               "run_dir": str(second.run_dir), "checkpoint": str(second.checkpoint),
               "cases": [c.case_id for c in second_cases], "pseudo_labeled": sorted(fused),
               "abandoned_without_lesion": dropped, "pseudo_labels": str(second_dir / "pseudo_labels")}]
    if third is not None:
        stages.append({"stage": 3, "name": "lesions on organ crops (the lesion stage)",
                       "classes": [{"name": n} for n in lesion_groups(taxonomy)],
                       "run_dir": str(third.run_dir), "lesion_stage": str(third.run_dir),
                       "cases": _cropped_cases(third.run_dir),
                       "iterations_per_group": lesion_iterations})
    if rank == 0:
        write_json_atomic(run_dir / "progressive.json", {
            "options": options, "checkpoint": str(second.checkpoint),
            "lesion_stage": None if third is None else str(third.run_dir), "stages": stages})
    steps = first.steps + second.steps + (third.steps if third is not None else 0)
    return ProgressiveResult(run_dir, second.checkpoint, steps, time.perf_counter() - begun,
                             second.data_wait_share, dict(second.val_dice), list(second.losses), stages,
                             None if third is None else third.run_dir)


def _stage(index: int, stage_cases: list[CachedCase], plan: Plan, config: TrainConfig, stage_dir: Path,
           validation_cases: Sequence[CachedCase], resume: bool,
           progress: Callable[[int, int, float], None] | None, runtime: Runtime, total: int) -> TrainResult:
    """One stage's training (reused when `resume` finds it finished); progress continues over the stages (`total`
    iterations in all)."""
    offset = (index - 1) * config.iterations
    final = stage_dir / "checkpoint_final"
    if resume and final.with_suffix(".json").exists():
        read_checkpoint_meta(final)  # refuses a damaged one
        if progress is not None:
            progress(offset + config.iterations, total, float("nan"))
        return TrainResult(stage_dir, final, 0, 0.0, 0.0)
    again = resume and (stage_dir / "checkpoint_latest.json").exists()
    report = None if progress is None else (lambda done, _total, loss: progress(offset + done, total, loss))
    return train(stage_cases, plan, config, stage_dir, validation_cases=validation_cases, resume=again,
                 progress=report, within_pipeline=True, runtime=runtime)


def _cropped_cases(stage_dir: Path) -> list[str]:
    """The cases whose organ crops a lesion stage trained on (its lesion_stage.json)."""
    record = json.loads((stage_dir / STAGE_FILE).read_text(encoding="utf-8"))
    return sorted({crop["case"] for group in record["groups"].values() for crop in group["crops"]})
