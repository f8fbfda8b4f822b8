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


def test_a_semi_supervised_run_logs_its_loss_parts_and_confident_share(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    train(cases, plan, TrainConfig(strategy="unimatch", iterations=2, log_every=1, checkpoint_every=0, device="cpu"),
          tmp_path / "run")
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["1", "2"]
    for row in rows:
        labeled, unlabeled, share = (float(row[k]) for k in ("loss_labeled", "loss_unlabeled", "confident_share"))
        assert float(row["loss"]) == pytest.approx(0.5 * labeled + 0.5 * unlabeled, rel=1e-3)  # paper 000, eq. 5
        assert 0.0 <= share <= 1.0


def test_a_supervised_run_logs_only_a_labeled_loss(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    train(cases, plan, TrainConfig(iterations=1, checkpoint_every=0, device="cpu"), tmp_path / "run")
    with open(tmp_path / "run" / "log.csv") as handle:
        row = next(csv.DictReader(handle))
    assert float(row["loss_labeled"]) == pytest.approx(float(row["loss"]), rel=1e-3)
    assert (row["loss_unlabeled"], row["confident_share"]) == ("", "")


def test_resuming_a_log_from_before_the_strategy_columns_widens_it(tmp_path):
    from unimos.training.trainlog import TrainLog

    (tmp_path / "log.csv").write_text("step,loss,lr,seconds,data_seconds,val_dice\n10,0.5,0.003,0.2,0.01,\n")
    log = TrainLog(tmp_path, fresh=False, tensorboard=False)
    log.row(20, 0.25, 0.002, 0.2, 0.01, None, {"loss_labeled": 0.3, "loss_unlabeled": 0.2, "confident_share": 0.5})
    assert (tmp_path / "log.csv").read_text().splitlines() == [
        "step,loss,lr,seconds,data_seconds,val_dice,loss_labeled,loss_unlabeled,confident_share",
        "10,0.5,0.003,0.2,0.01,,,,",
        "20,0.25000,0.002,0.2000,0.0100,,0.3,0.2,0.5"]
