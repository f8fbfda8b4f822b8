"""Training logs as the report reads them: one run's log.csv (loss, learning rate, time, validation Dice and the semi-
supervised loss parts), and every run's log in a folder, self-training rounds included."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_FILE = "log.csv"


_ROUND = re.compile(r"^(?:round|stage)_(\d+)$")


@dataclass(frozen=True)
class TrainingLog:
    """One training run's log.csv: loss, learning rate and time per logged step, validation Dice where measured."""

    label: str
    path: Path
    steps: tuple[int, ...]
    loss: tuple[float, ...]
    seconds: tuple[float, ...]
    data_seconds: tuple[float, ...]
    val_steps: tuple[int, ...]
    val_dice: tuple[float, ...]
    lr: tuple[float, ...] = ()
    # Semi-supervised strategies: the labeled and unlabeled parts of the loss and the confident pseudo-label share
    # (NaN where a row has none).
    loss_labeled: tuple[float, ...] = ()
    loss_unlabeled: tuple[float, ...] = ()
    confident_share: tuple[float, ...] = ()

    @property
    def semi_supervised(self) -> bool:
        """Whether the log holds an unlabeled loss or a confident share (a semi-supervised strategy wrote it)."""
        return any(math.isfinite(v) for v in (*self.loss_unlabeled, *self.confident_share))


def round_folders(folder: Path) -> list[tuple[int, Path]]:
    """The trainings below a multi-round run folder, in order: self-training rounds (round_<k>/) or progressive
    stages (stage_<k>/)."""
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _ROUND.match(p.name)))


def as_float(value: Any) -> float:
    """`value` (a JSON number, a CSV cell) as a float; NaN where it is missing, empty or not a number."""
    try:
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def training_logs(root: Path, order: list[str]) -> tuple[TrainingLog, ...]:
    runs = root / "runs"
    if not runs.is_dir():
        return ()
    folders = {p.name: p for p in runs.iterdir() if p.is_dir()}
    logs: list[TrainingLog] = []
    for name in [n for n in order if n in folders] + sorted(n for n in folders if n not in order):
        logs.extend(_run_logs(name, folders[name]))
    return tuple(log for log in logs if log.steps)


def train_run_logs(root: Path) -> tuple[TrainingLog, ...]:
    """The logged steps of a `unimos train` run folder (one log, or one per self-training round)."""
    return tuple(log for log in _run_logs(root.name, root) if log.steps)


def _run_logs(label: str, folder: Path) -> list[TrainingLog]:
    """The log.csv of one training run folder, or of each of its rounds or stages (round_<k>/, stage_<k>/), or of
    each network of a lesion stage (<group>/log.csv, also as a progressive run's stage 3)."""
    if (folder / LOG_FILE).is_file():
        return [_read_log(label, folder / LOG_FILE)]
    rounds = round_folders(folder)
    if not rounds:
        return _group_logs(label, folder)
    logs = []
    for _k, sub in rounds:
        name = f"{label} {sub.name.replace('_', ' ')}"
        logs += [_read_log(name, sub / LOG_FILE)] if (sub / LOG_FILE).is_file() else _group_logs(name, sub)
    return logs


def _group_logs(label: str, folder: Path) -> list[TrainingLog]:
    """One log per lesion group network of a lesion stage's folder (<group>/log.csv), by group name."""
    return [_read_log(f"{label} {sub.name}", sub / LOG_FILE) for sub in sorted(folder.iterdir())
            if sub.is_dir() and (sub / LOG_FILE).is_file()]


def _read_log(label: str, path: Path) -> TrainingLog:
    steps, loss, lr, seconds, data_seconds, val_steps, val_dice = [], [], [], [], [], [], []
    parts: dict[str, list[float]] = {"loss_labeled": [], "loss_unlabeled": [], "confident_share": []}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                step, value = as_float(row.get("step")), as_float(row.get("loss"))
                if not math.isfinite(step):
                    continue
                steps.append(int(step))
                loss.append(value)
                lr.append(as_float(row.get("lr")))
                seconds.append(as_float(row.get("seconds")))
                data_seconds.append(as_float(row.get("data_seconds")))
                for key, values in parts.items():
                    values.append(as_float(row.get(key)))
                dice = as_float(row.get("val_dice"))
                if math.isfinite(dice):
                    val_steps.append(int(step))
                    val_dice.append(dice)
    except OSError:
        pass  # an unreadable log is left out of the curves, like a missing one
    return TrainingLog(label, path, tuple(steps), tuple(loss), tuple(seconds), tuple(data_seconds),
                       tuple(val_steps), tuple(val_dice), tuple(lr), tuple(parts["loss_labeled"]),
                       tuple(parts["loss_unlabeled"]), tuple(parts["confident_share"]))
