"""Progress and result rendering: plain progress lines where no bars can be drawn (a log file, a pipe)."""

from __future__ import annotations

import io

from rich.console import Console

from unimos.cli.render import format_duration, progress_bars, results_table


class FakeClock:
    """A clock the test moves by hand: no sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _log_console() -> tuple[Console, io.StringIO]:
    """A console writing to a string, as to a redirected file (not a terminal)."""
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=80), buffer


def test_plain_lines_are_the_first_every_5_percent_and_the_last_with_loss_rate_and_time_left():
    console, buffer = _log_console()
    clock = FakeClock()
    lines_after: dict[int, int] = {}
    with progress_bars(console, clock=clock) as bars:
        train = bars("train")
        clock.now = 10.0  # setting up takes 10 s, then each step 2 s: 5% (5 steps) comes long before 30 s
        for done in range(1, 101):
            clock.now += 2.0
            train(done, 100, 1.0 / done)
            lines_after[done] = len(buffer.getvalue().splitlines())
    lines = buffer.getvalue().splitlines()
    assert lines[:3] == [
        "train: 1/100 (1%), loss 1.0000, 12s elapsed",
        "train: 5/100 (5%), loss 0.2000, 2 s/step, 20s elapsed, 3m 10s left",
        "train: 10/100 (10%), loss 0.1000, 2 s/step, 30s elapsed, 3m 00s left",
    ]
    assert lines[-1] == "train: 100/100 (100%), loss 0.0100, 2 s/step, 3m 30s elapsed"
    assert len(lines) == 21  # the first, 19 at 5%, 10%, ..., 95%, and the last
    assert lines_after[1] == lines_after[4] == 1 and lines_after[6] == lines_after[9] == 2  # quiet in between


def test_plain_lines_come_every_30_seconds_when_5_percent_takes_longer():
    console, buffer = _log_console()
    clock = FakeClock()
    with progress_bars(console, clock=clock) as bars:
        predict = bars("predict")
        for done in range(1, 66):  # 2 s a step of 1000: 5% takes 100 s
            clock.now += 2.0
            predict(done, 1000)  # no loss: the two-argument call still works
    assert buffer.getvalue().splitlines() == [
        "predict: 1/1000 (0%), 2s elapsed",
        "predict: 16/1000 (2%), 2 s/step, 32s elapsed, 32m 48s left",
        "predict: 31/1000 (3%), 2 s/step, 1m 02s elapsed, 32m 18s left",
        "predict: 46/1000 (5%), 2 s/step, 1m 32s elapsed, 31m 48s left",
        "predict: 50/1000 (5%), 2 s/step, 1m 40s elapsed, 31m 40s left",
        "predict: 65/1000 (6%), 2 s/step, 2m 10s elapsed, 31m 10s left",
    ]


def test_the_thresholds_are_arguments():
    console, buffer = _log_console()
    clock = FakeClock()
    with progress_bars(console, min_seconds=1e9, min_fraction=0.5, clock=clock) as bars:
        step = bars("fingerprint")
        for done in range(1, 5):
            clock.now += 1.0
            step(done, 4, float("nan"))  # a NaN loss (self-training between rounds) is left out
    assert buffer.getvalue().splitlines() == [
        "fingerprint: 1/4 (25%), 1s elapsed",
        "fingerprint: 2/4 (50%), 1 s/step, 2s elapsed, 2s left",
        "fingerprint: 4/4 (100%), 1 s/step, 4s elapsed",
    ]


def test_a_terminal_gets_the_rich_bars_and_no_plain_lines():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)
    clock = FakeClock()
    with progress_bars(console, clock=clock) as bars:
        train = bars("train")
        for done in range(1, 21):
            clock.now += 2.0
            train(done, 20, 0.5)
    output = buffer.getvalue()
    assert "20/20" in output  # the bar's own counter
    assert "train:" not in output and "elapsed" not in output and "s/step" not in output


def test_durations_read_as_seconds_minutes_or_hours():
    assert [format_duration(s) for s in (0.4, 59.0, 60.0, 3599.0, 7380.0)] == ["0s", "59s", "1m 00s", "59m 59s",
                                                                              "2h 03m"]


def test_results_table_says_its_cells_are_dsc_and_nsd_at_2_mm():
    scores = {"liver": {"dsc": 0.91, "nsd": 0.85}, "mean": {"dsc": 0.91, "nsd": 0.85}}
    console, buffer = _log_console()
    console.print(results_table({"partial": scores, "naive": scores}, ["partial", "naive", "upper_bound"]))
    output = " ".join(buffer.getvalue().split())  # the title wraps to the table's width
    assert "Held-out test set: mean DSC / NSD at 2 mm (0-1, higher is better)" in output
    assert output.count("DSC / NSD") == 3  # the title and one column per method that has results
    assert "0.910 / 0.850" in output and "upper_bound" not in output
