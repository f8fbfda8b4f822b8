"""The training log: OUT/log.csv always, and TensorBoard scalars under OUT/tensorboard when asked for."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from unimos.errors import UnimosError
from unimos.utils.atomic import atomic_path

LOG_FIELDS = ["step", "loss", "lr", "seconds", "data_seconds", "val_dice"]
STRATEGY_FIELDS = ["loss_labeled", "loss_unlabeled", "confident_share"]
"""What semi-supervised strategies report per step (StepOutput.logs): the labeled and unlabeled parts of the loss
and the share of voxels whose pseudo-label is confident enough to teach; empty for a strategy without them."""


def tensorboard_writer(run_dir: Path) -> Any:
    """A SummaryWriter on RUN/tensorboard; a readable error when the optional package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise UnimosError("--tensorboard", "needs the optional 'tensorboard' package, which is not installed",
                          "pip install 'unimos[tensorboard]' (or drop --tensorboard; OUT/log.csv is always written)"
                          ) from err
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


class TrainLog:
    """Appends one CSV row per logged step; mirrors loss, learning rate and validation Dice to TensorBoard."""

    def __init__(self, run_dir: Path, fresh: bool, tensorboard: bool) -> None:
        self.path = run_dir / "log.csv"
        if fresh or not self.path.exists():
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(LOG_FIELDS + STRATEGY_FIELDS)
        else:
            _widen(self.path)
        self.writer = tensorboard_writer(run_dir) if tensorboard else None

    def row(self, step: int, loss: float, lr: float, seconds: float, data_seconds: float,
            val_dice: float | None, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow([step, f"{loss:.5f}", f"{lr:.6g}", f"{seconds:.4f}", f"{data_seconds:.4f}",
                                         "" if val_dice is None else f"{val_dice:.4f}",
                                         *("" if k not in logs else f"{logs[k]:.5g}" for k in STRATEGY_FIELDS)])
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/seconds_per_step", seconds, step)
            if val_dice is not None:
                self.writer.add_scalar("validation/mean_dice", val_dice, step)
            for key in STRATEGY_FIELDS:
                if key in logs:
                    self.writer.add_scalar(f"train/{key}", logs[key], step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _widen(path: Path) -> None:
    """Give a log.csv from before the strategy columns those columns (empty), so a resumed run appends to a table
    with one header."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] == LOG_FIELDS + STRATEGY_FIELDS:
        return
    width = len(LOG_FIELDS + STRATEGY_FIELDS)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_FIELDS + STRATEGY_FIELDS)
        writer.writerows(row + [""] * (width - len(row)) for row in rows[1:])
