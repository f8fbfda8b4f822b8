"""The training log: CSV rows always, TensorBoard scalars when asked, a clear error when the package is missing."""

import csv
import sys

import pytest

from unimos.errors import UnimosError
from unimos.training.config import TrainConfig
from unimos.training.loop import train


def test_tensorboard_holds_the_same_losses_as_the_csv_log(tiny_cache, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cases, plan = tiny_cache
    config = TrainConfig(iterations=4, log_every=2, checkpoint_every=0, device="cpu", tensorboard=True)
    train(cases, plan, config, tmp_path / "run")
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = events.Scalars("train/loss")
    assert [e.step for e in logged] == [int(r["step"]) for r in rows] == [2, 4]
    assert [round(e.value, 5) for e in logged] == pytest.approx([float(r["loss"]) for r in rows], abs=1e-5)


def test_tensorboard_off_writes_no_event_files(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    train(cases, plan, TrainConfig(iterations=2, checkpoint_every=0, device="cpu"), tmp_path / "run")
    assert (tmp_path / "run" / "log.csv").exists()
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_missing_tensorboard_package_is_a_readable_error(tmp_path, monkeypatch):
    from unimos.training.trainlog import TrainLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    with pytest.raises(UnimosError, match="unimos\\[tensorboard\\]"):
        TrainLog(tmp_path, fresh=True, tensorboard=True)
