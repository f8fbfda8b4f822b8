"""What a report is made from: the methods, scores, training logs, manifest and predictions of one output folder.

Three layouts are recognised:
- a demo (or any run) folder: `evaluation/<method>/{scores.csv,summary.json}`, with `runs/<method>/log.csv`
  (self-training: `runs/<method>/round_<k>/log.csv`), `predictions/<method>/<case_id>.nii.gz` and
  `data/manifest.yaml` (`data/manifest_ssl.yaml` in `unimos demo --ssl` folders written before 2026-12-06) when
  present;
- a `unimos evaluate` output folder: `scores.csv` + `summary.json` only. Its predictions are found when the
  folder lies inside them (`evaluate`'s default, PREDICTIONS/evaluation); its manifest only when it is given;
- a `unimos train` run folder: `config.json`, `plan.json`, `log.csv` and checkpoints (self-training: in each
  `round_<k>/`). It has no scores: its report shows what the run was and its training curves.
Any other folder (empty, predictions not evaluated yet, an evaluation missing scores.csv) is refused with one
InputError saying what it lacks and which command writes it.
Method order follows `demo_results.json` / `ssl_results.json` when present (the order the demo ran them).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimos.data.manifest import Manifest, load_manifest
from unimos.data.plan_spec import Plan, checked
from unimos.errors import InputError, UnimosError
from unimos.evaluation.evaluate import PREDICTION_EXTENSIONS
from unimos.evaluation.records import StructureRecord
from unimos.report.training_logs import LOG_FILE, TrainingLog, as_float, round_folders, train_run_logs, training_logs

SCORE_FILE, SUMMARY_FILE = "scores.csv", "summary.json"
CONFIG_FILE, PLAN_FILE = "config.json", "plan.json"
CHECKPOINTS = ("checkpoint_final", "checkpoint_latest")
PREDICTION_FILES = ("predict_log.json", "labels.json")
REPORT_INPUTS = ("the output folder of `unimos evaluate` (scores.csv + summary.json), of `unimos demo` "
                 "(evaluation/<method>/) or of `unimos train` (config.json + log.csv)")


@dataclass(frozen=True)
class MethodResult:
    """The evaluation of one method: summary.json as written, the rows of scores.csv, its predictions folder."""

    name: str
    evaluation_dir: Path
    summary: dict[str, Any]
    scores: tuple[StructureRecord, ...]
    predictions_dir: Path | None

    def case_mean_dsc(self, case_id: str) -> float:
        """Mean DSC of a case over its scored structures (summary.json's per_case, else from the rows); NaN if none."""
        entry = self.summary.get("per_case", {}).get(case_id)
        if entry is not None and "dsc" in entry:
            return as_float(entry["dsc"])
        return finite_mean(r.dsc for r in self.scores if r.case_id == case_id and r.scored)

    def prediction_path(self, case_id: str) -> Path | None:
        if self.predictions_dir is None:
            return None
        for extension in PREDICTION_EXTENSIONS:
            path = self.predictions_dir / f"{case_id}{extension}"
            if path.is_file():
                return path
        return None


@dataclass(frozen=True)
class TrainRun:
    """What a `unimos train` run folder says of the run: its config.json, plan.json and latest checkpoint."""

    folder: Path  # the folder holding config.json: the run folder, or its last round_<k>/ (self-training)
    config: dict[str, Any]  # {} when config.json cannot be read
    plan: Plan | None  # None when plan.json is missing or is not a plan this version reads
    checkpoint: str | None  # "checkpoint_final" (finished), "checkpoint_latest" (interrupted) or None
    checkpoint_step: int | None
    rounds: int = 0  # self-training rounds found (round_<k>/), 0 for a plain run

    @property
    def finished(self) -> bool:
        return self.checkpoint == "checkpoint_final"


@dataclass(frozen=True)
class RunFolder:
    """Everything found in one output folder; `manifest` is None when none was found or it could not be read."""

    root: Path
    layout: str  # "run" (evaluation/<method>/...), "evaluation" (scores.csv + summary.json) or "train"
    methods: tuple[MethodResult, ...]
    logs: tuple[TrainingLog, ...]
    manifest_path: Path | None
    manifest: Manifest | None
    manifest_note: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    train: TrainRun | None = None  # set for a `unimos train` run folder

    @property
    def case_ids(self) -> list[str]:
        """Every evaluated case, in the order first met in the scores."""
        return list(dict.fromkeys(r.case_id for m in self.methods for r in m.scores))

    @property
    def structures(self) -> list[str]:
        """Every scored structure: in the taxonomy's order when the manifest is known, else as first met."""
        met = dict.fromkeys(s for m in self.methods for s in m.summary.get("per_structure", {}))
        met.update(dict.fromkeys(r.structure for m in self.methods for r in m.scores if r.scored))
        if self.manifest is not None:
            names = self.manifest.taxonomy.names[1:]
            return [n for n in names if n in met] + [n for n in met if n not in names]
        return list(met)


def find_run_folder(run_dir: str | Path, manifest_path: str | Path | None = None,
                    predictions_dir: str | Path | None = None) -> RunFolder:
    """Read what `unimos demo`, `unimos evaluate` or `unimos train` wrote into `run_dir`.

    Args:
        run_dir: a demo/run folder (evaluation/<method>/...), an evaluation folder (scores.csv, summary.json) or
            a `unimos train` run folder (config.json, log.csv).
        manifest_path: the manifest the predictions were scored against (default: RUN_DIR/data/manifest.yaml).
        predictions_dir: the predictions of a single-method evaluation folder (default: its parent folder when
            that holds predictions, as with `unimos evaluate`'s default output folder).

    Raises:
        InputError: the path is not a folder, or the folder holds none of the three layouts.
    """
    root = Path(run_dir)
    _check_folder(root)
    order = _method_order(root)
    train = None
    if _is_evaluation(root):
        predictions = Path(predictions_dir) if predictions_dir is not None else _enclosing_predictions(root)
        name = predictions.name if predictions is not None and root.name == "evaluation" else root.name
        methods = (_read_method(name, root, predictions),)
        layout = "evaluation"
    elif _is_evaluation(root / "evaluation"):
        predictions = Path(predictions_dir) if predictions_dir is not None else _folder(root / "predictions")
        methods = (_read_method(root.name, root / "evaluation", predictions),)
        layout = "run"
    elif (root / "evaluation").is_dir() and any(_is_evaluation(p) for p in (root / "evaluation").iterdir()):
        folders = {p.name: p for p in (root / "evaluation").iterdir() if _is_evaluation(p)}
        names = [n for n in order if n in folders] + sorted(n for n in folders if n not in order)
        methods = tuple(_read_method(n, folders[n], _folder(root / "predictions" / n)) for n in names)
        layout = "run"
    elif (root / "runs").is_dir() or _default_manifest(root) is not None:
        methods = ()  # a run folder not evaluated yet: the report shows what exists and says what is missing
        layout = "run"
    elif (train := _train_run(root)) is not None:
        methods = ()
        layout = "train"
    else:
        raise _not_a_report_folder(root)
    manifest_file = Path(manifest_path) if manifest_path is not None else _default_manifest(root)
    manifest, note = _load(manifest_file, root)
    logs = train_run_logs(root) if train is not None else training_logs(root, order)
    return RunFolder(root, layout, methods, logs, manifest_file if manifest else None, manifest, note, _meta(root),
                     train)


def finite_mean(values) -> float:
    """Mean of the finite values; NaN when there are none (as `unimos evaluate` leaves NaN out of means)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


# ----------------------------------------------------------------------------------------------- layout


def _check_folder(root: Path) -> None:
    """Refuse a path that does not exist or is a file, pointing at the folder when it is one a report reads."""
    where = root.absolute()
    if not root.exists():
        raise InputError(where, "does not exist", f"check the path, and give {REPORT_INPUTS}")
    if root.is_dir():
        if not os.access(root, os.R_OK | os.X_OK):
            raise InputError(where, "cannot be read (permission denied)", "check the folder's permissions")
        return
    if root.name in (SCORE_FILE, SUMMARY_FILE, LOG_FILE, CONFIG_FILE):
        raise InputError(where, "is a file, not a folder",
                         f"give the folder holding it: `unimos report {where.parent}`")
    raise InputError(where, "is a file, not a folder", f"give {REPORT_INPUTS}")


def _not_a_report_folder(root: Path) -> InputError:
    """The one error for a folder a report cannot be made of: what it holds, what it lacks, what writes that."""
    where = root.absolute()
    for folder in (root, root / "evaluation"):
        half = [name for name in (SCORE_FILE, SUMMARY_FILE) if (folder / name).is_file()]
        if half:
            lacking = SUMMARY_FILE if half == [SCORE_FILE] else SCORE_FILE
            return InputError(folder.absolute(), f"holds {half[0]} but no {lacking}, which `unimos evaluate` writes "
                              "beside it", _evaluate_again(folder.absolute()))
    if any((root / name).is_file() for name in PREDICTION_FILES) or (
            _holds_predictions(root) and not any(root.glob("*.yaml"))):  # a data folder holds its manifest
        return InputError(where, f"holds predictions but no evaluation of them ({SCORE_FILE} + {SUMMARY_FILE})",
                          f"run `unimos evaluate {where} MANIFEST` first; it scores them and writes their report "
                          f"to {where / 'evaluation' / 'report'}")
    if (root / "index.html").is_file():
        return InputError(where, "is a report already (index.html), not the folder it was made from",
                          f"give the folder above it: `unimos report {where.parent}`")
    if not any(root.iterdir()):
        return InputError(where, f"is empty; a report needs {REPORT_INPUTS}", "give the folder one of them wrote")
    return InputError(where, f"holds none of what a report needs: {REPORT_INPUTS}",
                      "give the folder one of them wrote")


def _evaluate_again(folder: Path) -> str:
    """How to rewrite an evaluation folder: from its enclosing predictions when it lies inside them."""
    if folder.name == "evaluation" and _holds_predictions(folder.parent):
        return f"run `unimos evaluate {folder.parent} MANIFEST --overwrite` again to rewrite both"
    return f"run `unimos evaluate PREDICTIONS MANIFEST --out {folder} --overwrite` again to rewrite both"


def _holds_predictions(folder: Path) -> bool:
    return any(any(folder.glob(f"*{extension}")) for extension in PREDICTION_EXTENSIONS)


def _is_evaluation(folder: Path) -> bool:
    return (folder / SCORE_FILE).is_file() and (folder / SUMMARY_FILE).is_file()


def _folder(path: Path) -> Path | None:
    return path if path.is_dir() else None


def _enclosing_predictions(evaluation_dir: Path) -> Path | None:
    """`unimos evaluate` writes to PREDICTIONS/evaluation by default: the parent holds the predictions then."""
    parent = evaluation_dir.parent
    return parent if _holds_predictions(parent) else None


def _train_run(root: Path) -> TrainRun | None:
    """The run `unimos train` wrote into `root` (config.json there, or in round_<k>/ for self-training); else None."""
    rounds = round_folders(root)
    candidates = [root] + [folder for _, folder in reversed(rounds)]
    folder = next((c for c in candidates if (c / CONFIG_FILE).is_file()), None)
    if folder is None:
        return None
    config, plan_json = _json(folder / CONFIG_FILE), _json(folder / PLAN_FILE)
    checkpoint, step = None, None
    for name in CHECKPOINTS:
        meta = _json(folder / f"{name}.json")
        if isinstance(meta, dict):
            checkpoint, step = name, meta.get("step")
            break
    return TrainRun(folder, config if isinstance(config, dict) else {}, checked(Plan, plan_json)[0],
                    checkpoint, step if isinstance(step, int) else None, len(rounds))


def _method_order(root: Path) -> list[str]:
    for name in ("demo_results.json", "ssl_results.json"):
        payload = _json(root / name)
        if isinstance(payload, dict):
            return list(payload)
    return []


def _default_manifest(root: Path) -> Path | None:
    data = root / "data"
    # `unimos demo --ssl` folders written before 2026-12-06 scored against a subset of sources, manifest_ssl.yaml.
    candidates = (["manifest_ssl.yaml"] if (root / "ssl_results.json").is_file() else []) + ["manifest.yaml"]
    return next((data / c for c in candidates if (data / c).is_file()), None)


def _load(path: Path | None, root: Path) -> tuple[Manifest | None, str | None]:
    if path is None:
        return None, f"no manifest was given and {root / 'data' / 'manifest.yaml'} does not exist"
    try:
        return load_manifest(path), None
    except UnimosError as err:
        return None, f"the manifest could not be read: {err}"


def _meta(root: Path) -> dict[str, Any]:
    for name in ("demo_meta.json", "ssl_meta.json"):
        payload = _json(root / name)
        if isinstance(payload, dict):
            return payload
    return {}


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- files


def _read_method(name: str, folder: Path, predictions: Path | None) -> MethodResult:
    summary = _json(folder / SUMMARY_FILE)
    if not isinstance(summary, dict):
        raise InputError(folder / SUMMARY_FILE, "is not readable JSON", "run `unimos evaluate` again to rewrite it")
    return MethodResult(name, folder, summary, _read_scores(folder / SCORE_FILE), predictions)


def _read_scores(path: Path) -> tuple[StructureRecord, ...]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror})", "check the file's permissions") from err
    try:
        return tuple(StructureRecord(r["case_id"], r["source"], r["modality"], r["structure"], as_float(r["dsc"]),
                              as_float(r["nsd"]), as_float(r["hd95"]), r["status"]) for r in rows)
    except (KeyError, TypeError) as err:
        raise InputError(path, f"lacks the column {err} of `unimos evaluate`'s scores.csv",
                         "give the scores.csv that `unimos evaluate` wrote") from err


