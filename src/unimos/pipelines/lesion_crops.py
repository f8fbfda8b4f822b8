"""The lesion stage on organ crops (paper 001, 2.2, coarse-to-fine; paper 004, organs before lesions): small
networks learn a project's lesion classes from crops around their parent organs only.

Why a separate stage: trained jointly with the organs on the whole abdomen, the demo's lesions (0.1-0.5% of the
voxels) stayed at 0 DSC at every budget that fits the demo, the upper bound included; the same data cut into crops
around each lesion's organ is learned in a few hundred steps (bench/README.md, "The demo's lesions: learned from
organ crops").

One network per lesion group (`lesion_groups`: organs with the same lesion classes, e.g. both kidneys for
kidney_tumor), trained on crops (cache format, `lesion_crop_cases`): for every labeled case with whole-volume
labels and every organ of the group that the case annotates together with one of its lesions, the organ's bounding
box grown by `margin_mm` and at least one training patch large, with the organ's mask as one more input channel.
Their classes are the organ and its lesion slots (`lesion_crop_taxonomy`); everything else in a crop is
background, and a lesion of the crop's organ that the case does not annotate stays open through the candidate
table (data/labels.py). At prediction (inference/lesion_stage.py) the organ model's labels give the crops, and
each group's lesions are written inside its organs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from unimos.data.labels import candidate_table
from unimos.data.plan_spec import ClassSpec, Plan
from unimos.data.taxonomy import ClassDef, Taxonomy
from unimos.errors import UnimosError
from unimos.inference.cascade import crop_affine
from unimos.inference.lesion_stage import (
    DEFAULT_LESION_MARGIN_MM,
    STAGE_FILE,
    box_slices,
    lesion_groups,
    lesions_read_as_organs,
    organ_crop_box,
    organ_mask_channel,
    parents_with_lesions,
)
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines.registry import PIPELINES
from unimos.preprocess.cache import CachedCase, write_cached_case
from unimos.preprocess.plan import plan_taxonomy, with_hashes
from unimos.strategies.base import resolve_options
from unimos.strategies.lesion_crops import LesionCrops
from unimos.training.config import TrainConfig
from unimos.training.loop import TrainResult, train
from unimos.utils.atomic import write_json_atomic
from unimos.utils.runtime import Runtime

DEFAULT_CROP_MARGIN_MM = DEFAULT_LESION_MARGIN_MM  # the crops at prediction use the same margin
DEFAULT_LESION_PATCH = 32  # voxels per axis: a 3 mm grid's liver crop holds a few such patches

def lesion_crop_taxonomy(slots: int) -> Taxonomy:
    """A lesion group network's classes: `organ` (the crop's organ), then its lesion slots, `lesion` (or `lesion_1`,
    `lesion_2`, ... for an organ with several lesion classes), inside the organ. The organ class makes the
    class-balanced sampler centre as many patches on organ voxels, the lesions' hardest neighbours, as on lesions."""
    names = ["lesion"] if slots == 1 else [f"lesion_{j}" for j in range(1, slots + 1)]
    return Taxonomy((ClassDef("organ"), *(ClassDef(n, ("organ",)) for n in names)))


def spacing_of(affine: Sequence[Sequence[float]]) -> list[float]:
    """Voxel spacing (mm per axis) of a 4x4 affine."""
    matrix = np.asarray(affine, dtype=np.float64)[:3, :3]
    return [float(v) for v in np.linalg.norm(matrix, axis=0)]


def crop_labels(label: np.ndarray, organ: np.ndarray, own: Sequence[int]) -> np.ndarray:
    """Project labels -> lesion-stage labels of a crop whose organ (with its own lesions) is the boolean `organ` and
    whose lesion classes are `own` (project indices, in slot order): the organ 1, its j-th lesion class 1 + j,
    everything else 0, including another organ's lesion (the other kidney's tumour)."""
    organ = np.asarray(organ, dtype=bool)
    label = np.asarray(label)
    out = organ.astype(np.uint8)
    for slot, index in enumerate(own, start=2):
        out[organ & (label == index)] = slot
    return out


def lesion_crop_cases(cases: Sequence[CachedCase], taxonomy: Taxonomy, folder: Path, patch_size: Sequence[int],
                      margin_mm: float = DEFAULT_CROP_MARGIN_MM,
                      organs: Sequence[int] | None = None) -> list[CachedCase]:
    """The training cases of a lesion group's network, written under `folder`: one per case and parent organ among
    `organs` (project indices; None: every organ with lesion classes).

    Each crop's image is the case's channels plus the organ's mask (`organ_mask_channel`); its labels are the organ
    and its lesion slots (`crop_labels`), and a slot whose lesion class the case does not annotate stays open in the
    candidate table (the slots lie inside `organ`: an organ voxel may be that lesion). Each lesion piece belongs to
    the organ it lies in (`lesions_read_as_organs`' shell rule: a right kidney's crop holds only its own tumours;
    prediction reads the organ model's kidney tumours by body side). Another organ, and its lesions, is background:
    a crop is read for its own organ's lesions only. Cases without labels, sparse cases (a region that is not the
    whole volume) and organs that the case does not annotate together with one of their lesions give no crop: there
    the crop could not say where a lesion is not."""
    by_parent = {p: own for p, own in parents_with_lesions(taxonomy).items() if organs is None or p in organs}
    out = []
    for case in cases:
        annotated = {int(i) for i in case.meta.get("annotated_classes", [])}
        cropped = {p: own for p, own in by_parent.items() if p in annotated and annotated.intersection(own)}
        label = _whole_volume_label(case) if cropped else None
        if label is None:
            continue
        spacing = spacing_of(case.meta["affine"])
        parts = lesions_read_as_organs(label, taxonomy)  # each lesion piece -> the organ it lies in
        for parent, own in cropped.items():
            lesions = lesion_crop_taxonomy(len(own))
            organ = parts == parent
            box = organ_crop_box(organ, spacing, margin_mm, patch_size)
            if box is None:
                continue
            cut = box_slices(box)
            crop_id = f"{case.case_id}__{taxonomy.names[parent]}"
            known = ["organ"] + [lesions.names[slot] for slot, index in enumerate(own, start=2) if index in annotated]
            meta = {k: v for k, v in case.meta.items() if k not in ("input_signature", "plan_cache_key")}
            meta.update({"case_id": crop_id, "crop_of": case.case_id, "crop_organ": taxonomy.names[parent],
                         "crop_box": [list(box[0]), list(box[1])], "shape": [hi - lo for lo, hi in zip(*box)],
                         "affine": crop_affine(case.meta["affine"], box[0]).tolist(), "kind": "full", "has_label": True,
                         "annotated_classes": [lesions.index(n) for n in known],
                         "candidate_table": candidate_table(lesions, known).astype(int).tolist(),
                         "annotated_slices": None})
            image = np.concatenate([np.asarray(case.image())[(slice(None), *cut)],
                                    organ_mask_channel(organ[cut])[None]]).astype(np.float32)
            crop_label = crop_labels(label[cut], organ[cut], own)
            out.append(write_cached_case(folder / crop_id, meta, {
                "image": image, "label": crop_label, "region": np.ones(crop_label.shape, dtype=bool)}))
    return out


def check_lesion_crops(cases: Sequence[CachedCase], taxonomy: Taxonomy) -> None:
    """Refuse, before any training, a project whose lesion groups cannot all be learned from crops: every group needs
    a labeled case with a whole-volume label map that annotates one of its organs with one of its lesions and holds
    a voxel of that lesion. Every such group is named at once."""
    missing = []
    for name, (organs, own) in lesion_groups(taxonomy).items():
        if not any(_teaches(case, organs, own) for case in cases):
            missing.append(name)
    if missing:
        raise UnimosError("lesion stage", f"no training case annotates a voxel of {', '.join(missing)} with its "
                          "organ inside a whole-volume label map (sparse slices do not say where a lesion is not)",
                          "add a source that annotates these lesions with their organ, or leave them out of "
                          "project.classes")


def _teaches(case: CachedCase, organs: Sequence[int], own: Sequence[int]) -> bool:
    """Whether `case` gives a lesion group's network a crop with one of its lesions (`lesion_crop_cases`' rule)."""
    annotated = {int(i) for i in case.meta.get("annotated_classes", [])}
    if not case.meta.get("has_label") or not annotated.intersection(organs) or not annotated.intersection(own):
        return False
    label = _whole_volume_label(case)
    return label is not None and bool(np.isin(label, [i for i in own if i in annotated]).any())


def _whole_volume_label(case: CachedCase) -> np.ndarray | None:
    """The case's label map when it labels the whole volume; None without labels or for a sparse case (there a
    crop could not say where a lesion is not)."""
    label, region = case.label(), case.region()
    if label is None or (region is not None and not bool(np.all(region))):
        return None
    return np.asarray(label)


def lesion_crop_plan(plan: Plan, slots: int, patch: int = DEFAULT_LESION_PATCH) -> Plan:
    """A lesion group network's plan: the project plan's grid, normalisation and network, the group's classes
    (`lesion_crop_taxonomy`) and a smaller patch (new hashes)."""
    classes = [ClassSpec(name=c.name, parents=list(c.parents)) for c in lesion_crop_taxonomy(slots).classes]
    size = [min(patch, int(s)) for s in plan.patch_size]
    return with_hashes(plan.model_copy(update={"classes": classes, "patch_size": size}))


@PIPELINES.register("lesion_crops")
def run_lesion_crops(cases: Sequence[CachedCase], plan: Plan, config: TrainConfig, run_dir: str | Path,
                     validation_cases: Sequence[CachedCase] = (), resume: bool = False,
                     progress: Callable[[int, int, float], None] | None = None,
                     runtime: Runtime | None = None) -> TrainResult:
    """`unimos train --strategy lesion_crops`: the lesion stage on the project's training cases (its options:
    strategies/lesion_crops.py), `config.iterations` per group network. Validation cases are not cropped: the stage
    is scored with its organ model (`unimos predict --lesion-model RUN`)."""
    options = resolve_options("LesionCrops", LesionCrops.defaults, config.strategy_options, LesionCrops.limits)
    return train_lesion_stage(cases, plan, replace(config, strategy="supervised", strategy_options={}), run_dir,
                              float(options["margin_mm"]), int(options["patch"]), progress, runtime, resume)


def train_lesion_stage(cases: Sequence[CachedCase], plan: Plan, config: TrainConfig, run_dir: str | Path,
                       margin_mm: float = DEFAULT_CROP_MARGIN_MM, patch: int = DEFAULT_LESION_PATCH,
                       progress: Callable[[int, int, float], None] | None = None,
                       runtime: Runtime | None = None, resume: bool = False) -> TrainResult:
    """One network per lesion group (`lesion_groups`: organs with the same lesion classes), each trained on its
    organs' crops of `cases` (the project's cache) for `config.iterations` in RUN/<group>/; RUN/lesion_stage.json
    names the groups, their checkpoints, the margin and the crops. One network for every organ's lesions learned
    none of them on the demo's development collection at three times the iterations (bench/README.md, "The demo's
    lesions: learned from organ crops"). A group without a case to learn it from is refused before any training
    (`check_lesion_crops`)."""
    run_dir = Path(run_dir)
    taxonomy = plan_taxonomy(plan)
    groups = lesion_groups(taxonomy)
    if not groups:
        raise UnimosError("project classes", "the project has no lesion class (a class inside an organ, e.g. "
                          "liver_tumor)", "add the lesion classes to project.classes, or train without a lesion stage")
    labeled = [c for c in cases if c.meta["has_label"]]
    check_lesion_crops(labeled, taxonomy)
    record: dict[str, Any] = {"margin_mm": margin_mm, "patch": patch, "groups": {}}
    begun, steps, results = time.perf_counter(), 0, []
    for number, (name, (organs, own)) in enumerate(groups.items()):
        stage_plan = lesion_crop_plan(plan, len(own), patch)
        group_dir = run_dir / name
        crops = lesion_crop_cases(labeled, taxonomy, run_dir / "lesion_crops" / name, stage_plan.patch_size,
                                  margin_mm, organs)
        report = None if progress is None else \
            (lambda done, total, loss, offset=number * config.iterations:
             progress(offset + done, len(groups) * config.iterations, loss))
        if resume and (group_dir / "checkpoint_final.json").exists():
            read_checkpoint_meta(group_dir / "checkpoint_final")  # refuses a damaged one
            if report is not None:
                report(config.iterations, config.iterations, float("nan"))
            result = TrainResult(group_dir, group_dir / "checkpoint_final", 0, 0.0, 0.0)
        else:
            result = train(crops, stage_plan, config, group_dir, progress=report, within_pipeline=True,
                           runtime=runtime, resume=resume and (group_dir / "checkpoint_latest.json").exists())
        steps += result.steps
        results.append(result)
        record["groups"][name] = {
            "organs": [taxonomy.names[i] for i in organs], "lesions": [taxonomy.names[i] for i in own],
            "classes": stage_plan.to_json()["classes"], "checkpoint": f"{name}/checkpoint_final",
            "crops": [{"case": c.meta["crop_of"], "organ": c.meta["crop_organ"], "box": c.meta["crop_box"]}
                      for c in crops]}
    write_json_atomic(run_dir / STAGE_FILE, record)
    return TrainResult(run_dir, run_dir / STAGE_FILE, steps, time.perf_counter() - begun,
                       float(np.mean([r.data_wait_share for r in results])))
