"""Score a folder of predictions against a manifest's references: only what each reference annotates.

For every labeled case of the chosen split, `<pred_dir>/<case_id>.nii.gz` (a label map in project class
indices on the case's image grid, as `unimos predict` writes it) is compared with the case's label mapped to
project classes (`to_project_labels`). Only the classes the case annotates are scored, and only inside its
annotated region (sparse references: the annotated slices, scored slice by slice; ignore values left out).
A class with children (liver -> liver_tumor) is scored as its whole region, itself plus its descendants, in
prediction and reference alike: the parent's region contains the child's (docs/architecture.md, data model).

Aggregates (NaN scores are left out of means and medians; a 'both_empty' row is not scored at all):
- per structure, per case and per source: mean and median over the group's scored rows (case x structure),
  with `n` the rows scored and `n_hd95` those with a defined HD95 (both masks non-empty);
- `mean`: the mean over structures of the per-structure means, each structure weighing the same.

Outputs in `out_dir`, each written atomically: `scores.csv` (one row per case x structure; 'nan' where a score
is not defined), `summary.json` (NaN written as null) and `summary.md` (tables for people).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from unimos.data.catalogue import normalise_name
from unimos.data.io import NIFTI_EXTENSIONS, read_volume
from unimos.data.labels import to_project_labels
from unimos.data.manifest import Case, Manifest
from unimos.data.manifest_spec import SPLITS
from unimos.data.taxonomy import Taxonomy
from unimos.data.volume import Volume, same_grid
from unimos.errors import InputError, UnimosError
from unimos.evaluation.metrics import DEFAULT_TOLERANCE_MM, ScoringRegion, StructureScore, score_structure
from unimos.evaluation.outputs import mm_text, write_outputs
from unimos.evaluation.records import METRICS, Aggregate, EvaluationResult, StructureRecord, nan_stat

PREDICTION_EXTENSIONS = NIFTI_EXTENSIONS  # what `unimos predict` writes by default, and all that is scored
# What `evaluate_predictions` writes in its output folder.
EVALUATION_OUTPUTS = ("scores.csv", "summary.json", "summary.md")
# Written by `unimos predict` beside the predictions: {"0": "background", "1": "liver", ...}.
LABELS_FILE = "labels.json"


def evaluate_predictions(pred_dir: Path, manifest: Manifest, out_dir: Path, split: str | None = "test",
                         tolerance_mm: float = DEFAULT_TOLERANCE_MM, *, allow_missing: bool = False,
                         progress: Callable[[str], None] | None = None) -> EvaluationResult:
    """Score predictions against the manifest's references and write scores.csv, summary.json, summary.md.

    Args:
        pred_dir: folder of `<case_id>.nii.gz` label maps in project class indices, on each case's image grid.
        manifest: the project; its labeled cases of `split` are scored.
        out_dir: where the three files go (created if needed).
        split: 'train', 'validation' or 'test'; None scores every labeled case.
        tolerance_mm: NSD tolerance, mm.
        allow_missing: score the cases that have a prediction instead of refusing when some have none.
        progress: called with each case id before it is scored (for a progress display).

    Raises:
        UnimosError: no labeled case in the split, or (unless `allow_missing`) predictions missing, listed.
        InputError: a prediction off the reference's grid or with values outside the project's classes, or a
            reference holding label values its source does not declare.
    """
    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    check_tolerance(tolerance_mm)
    if not pred_dir.is_dir():
        raise InputError(pred_dir, "is not a folder of predictions" if pred_dir.exists() else "does not exist",
                         "give the --out folder of `unimos predict`")
    lookup = class_lookup(pred_dir / LABELS_FILE, manifest.taxonomy)
    cases = _cases_to_score(manifest, split)
    predictions = {case.case_id: _prediction_path(pred_dir, case.case_id) for case in cases}
    missing = tuple(case_id for case_id, path in predictions.items() if path is None)
    if missing and (not allow_missing or len(missing) == len(predictions)):
        raise _missing_error(pred_dir, missing, split)
    records: list[StructureRecord] = []
    case_sources: dict[str, str] = {}
    for case in cases:
        path = predictions[case.case_id]
        if path is None:
            continue
        if progress is not None:
            progress(case.case_id)
        records.extend(score_case(case, manifest.taxonomy, path, tolerance_mm, lookup))
        case_sources[case.case_id] = case.source.name
    result = _aggregate(records, manifest.taxonomy, case_sources, split, tolerance_mm, missing, out_dir)
    write_outputs(result)
    return result


def score_case(case: Case, taxonomy: Taxonomy, prediction_path: Path,
               tolerance_mm: float = DEFAULT_TOLERANCE_MM, lookup: np.ndarray | None = None) -> list[StructureRecord]:
    """Score one case's prediction on the classes it annotates, inside its annotated region.

    `lookup` maps the prediction's label values to project class indices (`class_lookup`); None: they are the same.

    Raises:
        InputError: the prediction is not on the reference's grid or holds values outside the project classes;
            the reference holds undeclared label values.
    """
    if case.label_path is None:
        raise InputError(case.case_id, "has no reference label to score against",
                         "evaluate labeled cases only (give each case a label in the manifest)")
    label = read_volume(case.label_path, "label")
    image = _image_if_needed(case)
    reference, annotated_region = to_project_labels(case, taxonomy, label, image)
    prediction = read_volume(prediction_path, "label")
    _check_same_grid(prediction, label, prediction_path, case.label_path)
    if lookup is not None:
        _label_boxes(prediction.array, len(lookup), prediction_path)
        prediction = Volume(lookup[prediction.array], prediction.affine)
    pred_boxes = _label_boxes(prediction.array, taxonomy.num_classes, prediction_path)
    ref_boxes = ndimage.find_objects(reference)
    region = ScoringRegion.from_mask(annotated_region, case.annotated_slices)
    spacing = label.spacing_mm

    records = []
    for index in sorted(taxonomy.index(name) for name in case.annotated_classes):
        structure = taxonomy.names[index]
        members = [index, *taxonomy.descendants(index)]
        box = _union_box([pred_boxes, ref_boxes], members, reference.shape, margin=1)
        if box is None:
            score = StructureScore(math.nan, math.nan, math.nan, "both_empty")
        else:
            score = score_structure(np.isin(prediction.array[box], members), np.isin(reference[box], members),
                                    spacing, tolerance_mm=tolerance_mm, evaluation_mask=region.crop(box))
        records.append(StructureRecord(case.case_id, case.source.name, case.modality, structure,
                                       score.dsc, score.nsd, score.hd95, score.status))
    return records


# ----------------------------------------------------------------------------------------------- inputs


def _cases_to_score(manifest: Manifest, split: str | None) -> list[Case]:
    if split is not None and split not in SPLITS:
        raise UnimosError(manifest.path, f"has no split '{split}'",
                          f"choose one of {', '.join(SPLITS)}, or None for every labeled case")
    cases = [c for c in manifest.cases if c.label_path is not None and (split is None or c.split == split)]
    if not cases:
        which = f"in split '{split}'" if split is not None else "at all"
        raise UnimosError(manifest.path, f"has no labeled cases {which}",
                          "give cases `split: test` (and a label) in the manifest, or evaluate another split")
    return cases


def check_tolerance(tolerance_mm: float) -> None:
    """The NSD tolerance is a distance: a positive number of mm."""
    if not (math.isfinite(tolerance_mm) and tolerance_mm > 0):
        raise UnimosError("--tolerance-mm", f"is {tolerance_mm:g}, not a positive distance",
                          f"give a tolerance in mm greater than 0 (the default is {DEFAULT_TOLERANCE_MM:g})")


def class_lookup(labels_file: Path, taxonomy: Taxonomy) -> np.ndarray | None:
    """Prediction label value -> project class index, matched by class name through predict's labels.json.

    A class the model knows but the project does not is scored as background; None without a labels.json (the
    values are then taken as project class indices). Refuses a model that lacks classes the project scores."""
    if not labels_file.is_file():
        return None
    try:
        names = json.loads(labels_file.read_text(encoding="utf-8"))
        values = {int(k): str(v) for k, v in names.items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, ValueError, TypeError):
        raise InputError(labels_file, "is not a class table of `unimos predict` ({\"0\": \"background\", ...})",
                         "restore it from the prediction run, or delete it to read the values as project "
                         "class indices") from None
    if not values or min(values) < 0:
        raise InputError(labels_file, "holds no class table with non-negative label values",
                         "restore it from the prediction run, or delete it")
    project = {normalise_name(name): i for i, name in enumerate(taxonomy.names)}
    given = {normalise_name(name) for name in values.values()}
    lacking = [name for name in taxonomy.names[1:] if normalise_name(name) not in given]
    if lacking:
        raise InputError(labels_file, f"lists the model's classes {sorted(set(values.values()) - {'background'})}, "
                         f"which lack the project's {lacking}",
                         "evaluate against a manifest of the classes the model predicts, or predict with a model "
                         "trained on the project's classes")
    lookup = np.zeros(max(values) + 1, dtype=np.min_scalar_type(taxonomy.num_classes))
    for value, name in values.items():
        lookup[value] = project.get(normalise_name(name), 0)
    return lookup


def _prediction_path(pred_dir: Path, case_id: str) -> Path | None:
    for extension in PREDICTION_EXTENSIONS:
        path = pred_dir / f"{case_id}{extension}"
        if path.is_file():
            return path
    return None


def _missing_error(pred_dir: Path, missing: Sequence[str], split: str | None) -> UnimosError:
    shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
    which = f"split '{split}'" if split is not None else "the manifest"
    return InputError(pred_dir.absolute(), f"holds no prediction (<case_id>.nii.gz) for {len(missing)} case(s) "
                      f"of {which}: {shown}",
                      "predict these cases into this folder with `unimos predict CHECKPOINT SCANS --out "
                      f"{pred_dir} --skip-existing`, or add --allow-missing to score only the others")


def _image_if_needed(case: Case) -> Volume | None:
    """The case's image, read only when a merged left/right label needs the body midline (it is large)."""
    if any(m.kind == "sided" for m in case.source.label_map.values()) and case.image_paths:
        return read_volume(case.image_paths[0], "image")
    return None


def _check_same_grid(prediction: Volume, reference: Volume, pred_path: Path, ref_path: Path) -> None:
    if same_grid(prediction, reference):
        return
    raise InputError(pred_path, f"is not on the reference's grid: the prediction has shape {prediction.shape}, "
                     f"voxel size {mm_text(prediction.spacing_mm)} mm, orientation {prediction.orientation}, origin "
                     f"{mm_text(prediction.affine[:3, 3])} mm; the reference {ref_path} has shape {reference.shape}, "
                     f"voxel size {mm_text(reference.spacing_mm)} mm, orientation {reference.orientation}, origin "
                     f"{mm_text(reference.affine[:3, 3])} mm",
                     "write predictions on the case's image grid (as `unimos predict` does), or resample this "
                     "prediction onto the reference with nearest-neighbour interpolation")


def _label_boxes(array: np.ndarray, n: int, path: Path) -> list:
    """Bounding boxes per class of a prediction, refusing values outside 0..n-1."""
    low = int(array.min()) if array.size and np.issubdtype(array.dtype, np.signedinteger) else 0
    boxes = ndimage.find_objects(array) if low >= 0 else []
    if low < 0 or len(boxes) >= n:
        values = np.unique(array)
        bad = [int(v) for v in values if v < 0 or v >= n]
        raise InputError(path, f"holds label values {bad[:10]} that are not project classes (0..{n - 1})",
                         "give predictions in project class indices, as `unimos predict` writes them")
    return boxes


def _union_box(box_lists: Sequence[list], labels: Sequence[int], shape: tuple[int, ...],
               margin: int) -> tuple[slice, ...] | None:
    """Box holding label values `labels` in every `find_objects` list, grown by `margin` voxels; None if none."""
    boxes = [boxes[v - 1] for boxes in box_lists for v in labels if v - 1 < len(boxes) and boxes[v - 1]]
    if not boxes:
        return None
    return tuple(slice(max(min(b[a].start for b in boxes) - margin, 0),
                       min(max(b[a].stop for b in boxes) + margin, shape[a])) for a in range(len(shape)))


# ----------------------------------------------------------------------------------------------- aggregates


def _aggregate(records: list[StructureRecord], taxonomy: Taxonomy, case_sources: dict[str, str],
               split: str | None, tolerance_mm: float, missing: tuple[str, ...], out_dir: Path) -> EvaluationResult:
    structures = [s for s in taxonomy.names[1:] if any(r.structure == s and r.scored for r in records)]
    per_structure = {s: Aggregate.of(r for r in records if r.structure == s) for s in structures}
    sources = list(dict.fromkeys(case_sources.values()))
    per_source = {src: Aggregate.of(r for r in records if r.source == src) for src in sources}
    per_source_structure = {
        src: {s: Aggregate.of(r for r in records if r.source == src and r.structure == s) for s in structures
              if any(r.source == src and r.structure == s and r.scored for r in records)}
        for src in sources}
    per_case = {case_id: Aggregate.of(r for r in records if r.case_id == case_id) for case_id in case_sources}
    mean = {m: nan_stat(np.mean, np.array([getattr(a, m) for a in per_structure.values()], dtype=np.float64))
            for m in METRICS}
    return EvaluationResult(tuple(records), per_structure, per_source, per_source_structure, per_case, mean,
                            split, float(tolerance_mm), missing, out_dir / "scores.csv", out_dir / "summary.json",
                            out_dir / "summary.md", dict(case_sources))


# ----------------------------------------------------------------------------------------------- outputs


