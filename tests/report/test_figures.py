"""Report figures: which panels a run's curves get."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from unimos.report import figures
from unimos.report.training_logs import TrainingLog


def _log(semi: bool) -> TrainingLog:
    steps = (10, 20, 30)
    part = (0.4, 0.3, 0.2) if semi else (math.nan,) * 3
    return TrainingLog("run", Path("log.csv"), steps, (1.0, 0.5, 0.4), (0.2,) * 3, (0.01,) * 3, (), (),
                       (0.003,) * 3, part, part, (0.1, 0.5, 0.9) if semi else (math.nan,) * 3)


def _panel_titles(monkeypatch) -> list[str]:
    """The visible panels' titles of every figure saved from now on, in order (filled as figures are saved)."""
    titles: list[str] = []
    original = figures.save

    def spy(fig, path, dpi=figures.FIGURE_DPI):
        titles.extend(ax.get_title() for ax in fig.axes if ax.get_visible())
        return original(fig, path, dpi)

    monkeypatch.setattr(figures, "save", spy)
    return titles


@pytest.mark.parametrize(("semi", "expected"), [
    (False, ["Training loss", "Learning rate", "Time per iteration"]),
    (True, ["Training loss", "Learning rate", "Time per iteration", "Supervised and unsupervised loss",
            "Confident pseudo-labels"]),
])
def test_a_semi_supervised_run_gets_its_loss_parts_and_confident_share_panels(tmp_path, monkeypatch, semi,
                                                                              expected):
    titles = _panel_titles(monkeypatch)
    figures.run_curves_figure([_log(semi)], tmp_path / "curves.png")
    assert titles == expected
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_the_demo_comparison_figure_adds_the_semi_supervised_panels_when_any_row_learned_from_unlabeled_scans(
        tmp_path, monkeypatch):
    titles = _panel_titles(monkeypatch)
    figures.training_figure([_log(False)], tmp_path / "plain.png")
    assert titles == ["Training loss"]
    titles.clear()
    figures.training_figure([_log(False), _log(True)], tmp_path / "ssl.png")
    assert titles == ["Training loss", "Supervised and unsupervised loss", "Confident pseudo-labels"]
