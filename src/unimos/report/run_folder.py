"""What a report is made from: the methods, scores, training logs, manifest and predictions of one output folder.

Two layouts are recognised:
- a demo (or any run) folder: `evaluation/<method>/{scores.csv,summary.json}`, with `runs/<method>/log.csv`
  (self-training: `runs/<method>/round_<k>/log.csv`), `predictions/<method>/<case_id>.nii.gz` and
  `data/manifest.yaml` (`data/manifest_ssl.yaml` for `unimos demo --ssl`) when present;
- a `unimos evaluate` output folder: `scores.csv` + `summary.json` only. Its predictions are found when the
  folder lies inside them (`evaluate`'s default, PREDICTIONS/evaluation); its manifest only when it is given.
Method order follows `demo_results.json` / `ssl_results.json` when present (the order the demo ran them).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimos.data.manifest import Manifest, load_manifest
from unimos.errors import InputError, UnimosError
from unimos.evaluation.evaluate import StructureRecord

SCORE_FILE, SUMMARY_FILE, LOG_FILE = "scores.csv", "summary.json", "log.csv"
PREDICTION_EXTENSIONS = (".nii.gz", ".nii")
_ROUND = re.compile(r"^round_(\d+)$")


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
            return _float(entry["dsc"])
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
class TrainingLog:
    """One training run's log.csv: loss per logged step, validation Dice where it was measured."""

    label: str
    path: Path
    steps: tuple[int, ...]
    loss: tuple[float, ...]
    seconds: tuple[float, ...]
    data_seconds: tuple[float, ...]
    val_steps: tuple[int, ...]
    val_dice: tuple[float, ...]


@dataclass(frozen=True)
class RunFolder:
    """Everything found in one output folder; `manifest` is None when none was found or it could not be read."""

    root: Path
    layout: str  # "run" (evaluation/<method>/...) or "evaluation" (scores.csv + summary.json)
    methods: tuple[MethodResult, ...]
    logs: tuple[TrainingLog, ...]
    manifest_path: Path | None
    manifest: Manifest | None
    manifest_note: str | None
    meta: dict[str, Any] = field(default_factory=dict)

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
    """Read what `unimos demo` or `unimos evaluate` wrote into `run_dir`.

    Args:
        run_dir: a demo/run folder (evaluation/<method>/...) or an evaluation folder (scores.csv, summary.json).
        manifest_path: the manifest the predictions were scored against (default: RUN_DIR/data/manifest.yaml).
        predictions_dir: the predictions of a single-method evaluation folder (default: its parent folder when
            that holds predictions, as with `unimos evaluate`'s default output folder).

    Raises:
        InputError: the folder does not exist or holds no evaluation in either layout.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise InputError(root.absolute(), "is not a folder", "give the folder `unimos demo` or `unimos evaluate` wrote")
    order = _method_order(root)
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
    elif (root / "runs").is_dir() or _default_manifest(root).is_file():
        methods = ()  # a run folder not evaluated yet: the report shows what exists and says what is missing
        layout = "run"
    else:
        raise InputError(root.absolute(), f"holds no evaluation: neither {SCORE_FILE} + {SUMMARY_FILE} nor "
                         f"evaluation/<method>/{SUMMARY_FILE}",
                         "give the folder `unimos demo` wrote, or the output folder of `unimos evaluate`")
    manifest_file = Path(manifest_path) if manifest_path is not None else _default_manifest(root)
    manifest, note = _load(manifest_file, root)
    return RunFolder(root, layout, methods, _training_logs(root, order), manifest_file if manifest else None,
                     manifest, note, _meta(root))


def finite_mean(values) -> float:
    """Mean of the finite values; NaN when there are none (as `unimos evaluate` leaves NaN out of means)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


# ----------------------------------------------------------------------------------------------- layout


def _is_evaluation(folder: Path) -> bool:
    return (folder / SCORE_FILE).is_file() and (folder / SUMMARY_FILE).is_file()


def _folder(path: Path) -> Path | None:
    return path if path.is_dir() else None


def _enclosing_predictions(evaluation_dir: Path) -> Path | None:
    """`unimos evaluate` writes to PREDICTIONS/evaluation by default: the parent holds the predictions then."""
    parent = evaluation_dir.parent
    if any(parent.glob("*.nii.gz")) or any(parent.glob("*.nii")):
        return parent
    return None


def _method_order(root: Path) -> list[str]:
    for name in ("demo_results.json", "ssl_results.json"):
        payload = _json(root / name)
        if isinstance(payload, dict):
            return list(payload)
    return []


def _default_manifest(root: Path) -> Path | None:
    data = root / "data"
    # `unimos demo --ssl` scores against the subset of sources it wrote as manifest_ssl.yaml.
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
        return tuple(StructureRecord(r["case_id"], r["source"], r["modality"], r["structure"], _float(r["dsc"]),
                              _float(r["nsd"]), _float(r["hd95"]), r["status"]) for r in rows)
    except (KeyError, TypeError) as err:
        raise InputError(path, f"lacks the column {err} of `unimos evaluate`'s scores.csv",
                         "give the scores.csv that `unimos evaluate` wrote") from err


def _float(value: Any) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def _training_logs(root: Path, order: list[str]) -> tuple[TrainingLog, ...]:
    runs = root / "runs"
    if not runs.is_dir():
        return ()
    folders = {p.name: p for p in runs.iterdir() if p.is_dir()}
    logs: list[TrainingLog] = []
    for name in [n for n in order if n in folders] + sorted(n for n in folders if n not in order):
        folder = folders[name]
        if (folder / LOG_FILE).is_file():
            logs.append(_read_log(name, folder / LOG_FILE))
            continue
        rounds = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _ROUND.match(p.name)))
        logs.extend(_read_log(f"{name} round {k}", p / LOG_FILE) for k, p in rounds if (p / LOG_FILE).is_file())
    return tuple(log for log in logs if log.steps)


def _read_log(label: str, path: Path) -> TrainingLog:
    steps, loss, seconds, data_seconds, val_steps, val_dice = [], [], [], [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                step, value = _float(row.get("step")), _float(row.get("loss"))
                if not math.isfinite(step):
                    continue
                steps.append(int(step))
                loss.append(value)
                seconds.append(_float(row.get("seconds")))
                data_seconds.append(_float(row.get("data_seconds")))
                dice = _float(row.get("val_dice"))
                if math.isfinite(dice):
                    val_steps.append(int(step))
                    val_dice.append(dice)
    except OSError:
        pass  # an unreadable log is left out of the curves, like a missing one
    return TrainingLog(label, path, tuple(steps), tuple(loss), tuple(seconds), tuple(data_seconds),
                       tuple(val_steps), tuple(val_dice))
