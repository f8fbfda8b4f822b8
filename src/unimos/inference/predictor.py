"""`predict`: a trained model on new scans, results written in each input's exact geometry.

Per input: read -> prepare (RAS, plan spacing, body crop, normalisation; as in training) -> sliding-window
probabilities (the plan's patch, or with `window="auto"` the fewest, largest windows the memory budget allows:
inference/windows.py) -> argmax on the plan's grid (only the label map is resampled back, never the C probability
channels: that is where nnU-Net spends its time and memory) -> largest component per organ -> nearest
resampling onto the input's grid -> atomic NIfTI write. Each case's record (predict_log.json) holds the seconds of
every stage (read, prepare, network, postprocess, resample_back, write) and the windows used.

Before any work a batch whose inputs map to one output name, or whose outputs exist (unless skipped or
overwritten), is refused; before the network runs each input's intensities and shape are checked
(inference/sanity.py): a refusal, or with `force` a warning in the case's record. A run that produced nothing
leaves no files of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unimos.data.io import (
    check_format_for_input,
    dicom_modality,
    prediction_path,
    read_geometry,
    read_volume,
    write_prediction,
)
from unimos.data.labels import body_midline_x
from unimos.data.plan_spec import ModelPlan
from unimos.data.validation import nonfinite_problem, spacing_problem
from unimos.data.volume import Volume
from unimos.errors import InputError, Problem, ResourceError, UnimosError
from unimos.inference import sanity
from unimos.inference.batch_files import (
    group_channels,
    output_folder,
    refuse_colliding_inputs,
    refuse_existing_outputs,
    refuse_other_classes,
    remove_what_we_created,
    write_labels_json,
)
from unimos.inference.cascade import DEFAULT_MARGIN_MM, check_cascade_pair, predict_cascade
from unimos.inference.lesion_stage import (
    LesionStage,
    Midline,
    add_lesions,
    check_lesion_pair,
    has_sided_lesions,
)
from unimos.inference.memory import UsageMeter, current_rss_mib
from unimos.inference.model import LoadedModel
from unimos.inference.postprocess import largest_component_per_class
from unimos.inference.sliding import predict_probabilities
from unimos.inference.windows import WindowPlan, check_window_mode, plan_windows
from unimos.preprocess.prepare import PreparedGeometry, prepare_image
from unimos.preprocess.resample import orientation_to_ras, reorient, resample_nearest, target_shape
from unimos.utils.atomic import remove_partials, write_json_atomic
from unimos.utils.precision import check_precision, precision_name, resolve_precision


@dataclass
class PredictOptions:
    overlap: float = 0.5
    mirror: bool = False
    largest_component: bool = True
    sw_batch_size: int = 2
    modality: str | None = None
    memory_budget_gib: float | None = None  # refuse a case whose estimated peak exceeds it; None: no check
    output_format: str = "nifti"  # nifti | seg-nrrd | dicom-seg (data/io/outputs.py)
    # "patch": the plan's patch, Gaussian-weighted sliding windows as in training (default). "auto": the fewest,
    # largest windows, up to the whole padded volume, whose estimated memory fits memory_budget_gib (3 GiB when
    # None); the patch when nothing larger fits. 4-5x less compute for a 3 mm abdomen with a 96^3 patch, but the
    # network's instance normalisation then sees larger windows than in training: less accurate on models trained
    # on small patches (inference/windows.py).
    window: str = "patch"
    # Network arithmetic (utils/precision.py): "auto" is bfloat16 where the hardware runs it natively (a CPU with
    # AMX, a recent GPU), about twice as fast as float32 there, and float32 elsewhere.
    precision: str = "auto"
    # Intensity and shape sanity checks (inference/sanity.py): a failed check refuses the case; with force=True it is
    # a warning recorded in the case's log instead.
    force: bool = False

    def __post_init__(self) -> None:
        check_window_mode(self.window)
        check_precision(self.precision)


@dataclass
class CaseRecord:
    case_id: str
    input: str
    output: str | None
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    area_mib_s: float = 0.0
    error: str | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage, in pipeline order
    window: dict[str, Any] = field(default_factory=dict)  # WindowPlan.summary(): mode, size, overlap, count
    cascade: dict[str, Any] = field(default_factory=dict)  # with a coarse model: the region the fine model saw
    lesion_crops: dict[str, Any] = field(default_factory=dict)  # with a lesion model: the crop of each organ
    # What looked wrong with the input (inference/sanity.py): a thin axis, or a refused check predicted anyway with
    # --force. One readable sentence each, naming the file.
    warnings: list[str] = field(default_factory=list)


def _modality(model: LoadedModel, options: PredictOptions) -> str:
    known = sorted(model.plan.normalisation)
    if options.modality:
        if options.modality.upper() not in known:
            raise UnimosError("--modality", f"'{options.modality}' is not one the model was trained on ({known})",
                              f"use one of {known}")
        return options.modality.upper()
    if len(known) != 1:
        raise UnimosError("--modality", f"the model was trained on several modalities ({known})",
                          "say which one the inputs are with --modality")
    return known[0]


def labels_to_input_grid(labels: np.ndarray, geometry: PreparedGeometry) -> np.ndarray:
    """A label map on the cropped plan grid -> the input's own voxel grid (nearest, exact index mapping)."""
    full = np.zeros(geometry.resampled_shape, dtype=labels.dtype)
    full[geometry.crop] = labels
    ras = resample_nearest(Volume(full, geometry.resampled_affine), geometry.ras_shape).array
    inverse = np.zeros_like(geometry.ras_orientation)
    for axis, (target, flip) in enumerate(geometry.ras_orientation):
        inverse[int(target)] = [axis, flip]
    return reorient(Volume(ras, np.eye(4)), inverse).array


def window_plan(model: LoadedModel, image_shape: Sequence[int], options: PredictOptions) -> WindowPlan:
    """The windows the network will see for a prepared image of `image_shape` (spatial, on the plan's grid); for a
    2D network that resizes slices, the windows (and the shape in their summary) are those of the resized slices."""
    patch = model.meta.get("patch_size", model.plan.patch_size)
    resize = int(getattr(model.network, "slice_resize", 0))
    if resize:  # the windows run over the resized slices
        image_shape = [resize, resize, *list(image_shape)[2:]]
    return plan_windows(options.window, model.network, image_shape, patch, options.overlap, len(model.class_names),
                        int(model.meta["in_channels"]), options.memory_budget_gib, model.device,
                        batch=options.sw_batch_size)


def predict_volume(model: LoadedModel, channels: list[Volume], options: PredictOptions,
                   stages: dict[str, float] | None = None, window: dict[str, Any] | None = None,
                   lesion_stage: LesionStage | None = None, lesion_crops: dict[str, Any] | None = None,
                   midline_x_mm: float | None = None) -> Volume:
    """Label map (project class indices) for one input, on the input's grid with its affine.

    `stages` receives the seconds of each step, `window` the summary of the windows used (both optional). With a
    `lesion_stage` (pipelines/lesion_crops.py), its lesions replace the model's inside each parent organ's crop
    (inference/lesion_stage.py; `lesion_crops` receives the crops; `midline_x_mm`: the whole scan's body midline,
    world x in mm, for a kidney tumour's side, computed from `channels` if not given). The input
    is not checked here (the cascade also calls it on crops): `predict_files` runs `check_input` on the whole scan
    first; call it too when predicting volumes directly.
    """
    clock = time.perf_counter()
    timings = stages if stages is not None else {}
    image, geometry = prepare_image(channels, _modality(model, options), model.plan)
    timings["prepare"] = time.perf_counter() - clock
    clock = time.perf_counter()
    windows = window_plan(model, image.shape[1:], options)
    precision = resolve_precision(options.precision, model.device)
    if window is not None:
        window.update(windows.summary(), precision=precision_name(precision))
    tensor = torch.from_numpy(image)[None].to(model.device)
    if options.window == "patch":  # the plan's patch, overlap and batch, exactly as before auto windows existed
        size, overlap, batch = windows.size, options.overlap, options.sw_batch_size
    else:  # one overlap per axis; one window per call (an auto fallback to the patch included, to save memory)
        size, overlap, batch = windows.size, windows.overlap, windows.batch
    probs = predict_probabilities(model.network, tensor, size, overlap, options.mirror, batch,
                                  precision=precision)
    labels = probs.argmax(1)[0].to(torch.uint8).cpu().numpy()
    del probs
    timings["network"] = time.perf_counter() - clock
    if lesion_stage is not None:
        clock = time.perf_counter()
        midline = None
        if has_sided_lesions(model.taxonomy):
            x_mm = body_midline_x(channels[0], _modality(model, options)) if midline_x_mm is None else midline_x_mm
            midline = Midline(x_mm, geometry.cropped_affine)
        labels, crops = add_lesions(labels, tensor, model.taxonomy, lesion_stage, model.plan.target_spacing_mm,
                                    options, precision, midline)
        if lesion_crops is not None:
            lesion_crops.update(crops)
        timings["lesions"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if options.largest_component:
        labels = largest_component_per_class(labels, model.taxonomy)
    timings["postprocess"] = time.perf_counter() - clock
    clock = time.perf_counter()
    out = labels_to_input_grid(labels, geometry)
    timings["resample_back"] = time.perf_counter() - clock
    return Volume(out, channels[0].affine, channels[0].path)


def estimate_memory_gib(shape: Sequence[int], affine: np.ndarray, n_channels: int, plan: ModelPlan,
                        n_classes: int, mirror: bool = False) -> tuple[float, tuple[int, ...]]:
    """Estimated peak memory (GiB) of the arrays `predict_volume` holds for one input, from its header alone.

    Args:
        shape: the input's voxel grid (X, Y, Z); affine: its RAS+ affine (gives the spacing in mm).
        n_channels: input channels; plan: the model's plan (its target spacing in mm).
        n_classes: network outputs, background included; mirror: whether mirror test-time augmentation runs.
    Counted, in float32 unless said: the input and its RAS copy (2 per channel) on the input grid; the resampled,
    normalised and tensor copies (3 per channel) on the plan grid before the body crop, which the header cannot
    know; MONAI's sliding-window sum, its normalised copy and the softmax (3 per class, one more with mirroring)
    plus the count map; the argmax (int64); three uint8 label maps back on the input grid. The network's weights
    and activations and torch itself come on top.
    Returns the estimate and the plan-grid shape.
    """
    ornt = orientation_to_ras(affine)
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    ras_shape, ras_spacing = [0, 0, 0], [0.0, 0.0, 0.0]
    for axis, (target, _flip) in enumerate(ornt):
        ras_shape[int(target)], ras_spacing[int(target)] = int(shape[axis]), float(spacing[axis])
    plan_shape = target_shape(ras_shape, ras_spacing, plan.target_spacing_mm)
    n_input, n_plan = float(np.prod(shape)), float(np.prod(plan_shape))
    per_class = 3 + (1 if mirror else 0)
    total = (4 * 2 * n_channels * n_input + 4 * 3 * n_channels * n_plan + 4 * (per_class * n_classes + 1) * n_plan
             + 8 * n_plan + 3 * n_input)
    return total / 2**30, plan_shape


def _check_memory_budget(model: LoadedModel, files: Sequence[Path], options: PredictOptions) -> None:
    """Refuse, from the header only, an input whose prediction would need more memory than the budget allows."""
    budget = options.memory_budget_gib
    if budget is None:
        return
    shape, affine = read_geometry(files[0])
    arrays, plan_shape = estimate_memory_gib(shape, affine, len(files), model.plan, len(model.class_names),
                                             options.mirror)
    held = current_rss_mib() / 1024  # torch and the network, already loaded
    if held + arrays > budget:
        grid = f"{tuple(plan_shape)} on the model's {list(model.plan.target_spacing_mm)} mm grid"
        raise ResourceError(files[0], f"predicting it needs an estimated {held + arrays:.2f} GiB of memory "
                                      f"({arrays:.2f} GiB of arrays for input {tuple(shape)} voxels, {grid}, "
                                      f"{len(model.class_names)} classes, on top of {held:.2f} GiB that torch and the "
                                      f"model hold), more than the memory budget of {budget:g} GiB",
                            "raise the memory budget on a machine that has the memory, or crop the scan to the "
                            "region to segment")


def _check_channels(channels: list[Volume]) -> None:
    """Refuse inputs that would give a meaningless label map: NaN/Inf voxels, or a spacing no scanner writes."""
    for channel in channels:
        problem = nonfinite_problem(channel) or spacing_problem(channel)
        if problem is not None:
            raise InputError(problem.where, problem.problem, problem.fix)


def check_input(model: LoadedModel, files: Sequence[Path], channels: Sequence[Volume], modality: str,
                force: bool) -> list[str]:
    """Sanity of one case's input before the network runs (inference/sanity.py): refuse it with an InputError, or
    with `force` return the problems as warnings; a thin axis is only ever a warning (`shape_warnings`)."""
    problems: list[Problem] = []
    for path, channel in zip(files, channels):
        where = str(path)
        tag = dicom_modality(path) if Path(path).is_dir() else None
        found = (sanity.dicom_tag_problem(tag, modality, where),
                 sanity.intensity_problem(channel.array, modality, model.plan, where))
        problems.extend(p for p in found if p is not None)
    if problems and not force:
        first = problems[0]
        raise InputError(first.where, first.problem, first.fix)
    return [sanity.problem_text(p) for p in problems] + shape_warnings(model, channels[0], files[0])


def shape_warnings(model: LoadedModel, channel: Volume, where: str | Path) -> list[str]:
    """Axes of the input far thinner than the model's patch on its grid; none for a 2D model that resizes slices."""
    patch = list(model.meta.get("patch_size", model.plan.patch_size))
    if len(patch) == 2 and int(getattr(model.network, "slice_resize", 0)):
        return []
    return sanity.thin_axis_warnings(channel.shape, channel.affine, model.plan.target_spacing_mm, patch,
                                     str(where))


def predict_files(model: LoadedModel, inputs: Sequence[Path], out_dir: str | Path, options: PredictOptions,
                  skip_existing: bool = False, progress: Callable[[int, int], None] | None = None,
                  coarse: LoadedModel | None = None, roi_margin_mm: float | None = None,
                  overwrite: bool = False, lesion_stage: LesionStage | None = None) -> list[CaseRecord]:
    """Predict every input into `out_dir/<case_id>.nii.gz` (or the chosen viewer format); a failing case is recorded
    and the batch goes on; what a killed earlier run left half-written is removed first.

    Refused before any work: inputs that map to one output name, and outputs that exist already unless
    `skip_existing` (keep them, skip those cases) or `overwrite` (replace them). Each case's input is checked
    (`check_input`) before the network runs. A run that produces no output leaves nothing of its own behind
    (labels.json, predict_log.json, the folder it created); files that were there before are never touched.

    With a `coarse` model, each case goes through the coarse-to-fine cascade (inference/cascade.py): `model` then
    runs only inside the region the coarse model found, grown by `roi_margin_mm`. With a `lesion_stage`, its
    lesions replace `model`'s inside each parent organ (inference/lesion_stage.py)."""
    out_dir = Path(out_dir)
    resolve_precision(options.precision, model.device)  # float16 on a CPU fails here, before any case
    if coarse is not None:
        check_cascade_pair(coarse, model)
    if lesion_stage is not None:
        check_lesion_pair(model, lesion_stage)
    modality = _modality(model, options)
    n_channels = int(model.meta["in_channels"])
    refuse_colliding_inputs(list(inputs), n_channels, out_dir, options.output_format)
    cases = group_channels(list(inputs), n_channels)
    targets = [prediction_path(out_dir, case_id, options.output_format) for case_id, _files in cases]
    refuse_existing_outputs(targets, out_dir, skip_existing, overwrite)
    refuse_other_classes(model, out_dir)
    created_folders = output_folder(out_dir)
    remove_partials(out_dir)
    created_files: list[Path] = []
    records: list[CaseRecord] = []
    try:
        for done, ((case_id, files), target) in enumerate(zip(cases, targets), start=1):
            record = CaseRecord(case_id, str(files[0]), str(target))
            if skip_existing and target.exists():
                record.error = None
                record.stages["skipped"] = 1.0
            else:
                try:
                    check_format_for_input(options.output_format, files[0])
                    _check_memory_budget(model, files, options)
                    with UsageMeter() as meter:
                        clock = time.perf_counter()
                        channels = [read_volume(f, kind="image") for f in files]
                        _check_channels(channels)
                        record.warnings = check_input(model, files, channels, modality, options.force)
                        if coarse is not None:  # the coarse model sees the whole scan on its own grid
                            record.warnings += [w for w in shape_warnings(coarse, channels[0], files[0])
                                                if w not in record.warnings]
                        record.stages["read"] = time.perf_counter() - clock
                        # a kidney tumour's side is read about the whole scan's midline, not a cascade crop's
                        midline_x_mm = body_midline_x(channels[0], modality) if lesion_stage is not None and \
                            has_sided_lesions(model.taxonomy) else None

                        def one_volume(stage: LoadedModel, *args: Any, **kwargs: Any) -> Volume:
                            if stage is not model:  # the coarse stage finds the region, not lesions
                                return predict_volume(stage, *args, **kwargs)
                            return predict_volume(stage, *args, **kwargs, lesion_stage=lesion_stage,
                                                  lesion_crops=record.lesion_crops, midline_x_mm=midline_x_mm)

                        if coarse is None:
                            prediction = one_volume(model, channels, options, record.stages, record.window)
                        else:
                            prediction, record.cascade = predict_cascade(
                                one_volume, coarse, model, channels, options, record.stages, record.window,
                                DEFAULT_MARGIN_MM if roi_margin_mm is None else roi_margin_mm)
                        clock = time.perf_counter()
                        created_files += [p for p in [write_labels_json(model, out_dir)] if p is not None]
                        write_prediction(prediction, out_dir, case_id, options.output_format, model.class_names,
                                         source=files[0])
                        record.stages["write"] = time.perf_counter() - clock
                    record.seconds, record.peak_rss_mib, record.area_mib_s = (
                        meter.usage.seconds, meter.usage.peak_rss_mib, meter.usage.area_mib_s)
                except UnimosError as err:
                    record.output, record.error = None, str(err)
                    if overwrite:  # the earlier output was to be replaced: it must not pass for this run's
                        target.unlink(missing_ok=True)
            records.append(record)
            if progress:
                progress(done, len(cases))
    finally:
        produced = any(r.error is None and not r.stages.get("skipped") for r in records)
        if not produced:  # the failures are in the returned records (the CLI prints them); no files are left
            remove_what_we_created(created_files, created_folders)
    if produced:
        write_json_atomic(out_dir / "predict_log.json", _merged_log(out_dir / "predict_log.json", records))
    return records


def _merged_log(path: Path, records: Sequence[CaseRecord]) -> list[dict[str, Any]]:
    """This run's records after the earlier runs' records of the other cases in the folder (a batch resumed with
    --skip-existing or partly redone keeps the log of every case)."""
    ours = {r.case_id for r in records}
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    except (OSError, ValueError):
        earlier = []
    kept = [r for r in earlier if isinstance(r, dict) and r.get("case_id") not in ours] \
        if isinstance(earlier, list) else []
    return kept + [asdict(r) for r in records]
