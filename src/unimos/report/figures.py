"""The report's summary figures as PNG files a paper can use: coverage heat map, training curves, DSC per organ.

Matplotlib runs on its Agg backend (files only, no display), set before pyplot is imported; every figure is
closed after saving, so a report of many figures holds no memory afterwards. Organ colours come from
`unimos.data.colors`; methods, which have no colour of their own, take matplotlib's tab10 cycle in order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, and work without a display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from unimos.data.colors import color_table, rgb_hex
from unimos.report.run_folder import MethodResult
from unimos.report.training_logs import TrainingLog
from unimos.utils.atomic import atomic_path

FIGURE_DPI = 150  # print quality for a figure a column wide (about 1000 px for 6.5 in)
_STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False}


@contextlib.contextmanager
def figure(width_in: float, height_in: float, **subplots) -> Iterator[tuple[plt.Figure, np.ndarray]]:
    """A new figure with a grid of axes (always a 2D array), closed on leaving even when drawing fails."""
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(figsize=(width_in, height_in), squeeze=False, **subplots)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def save(fig: plt.Figure, path: Path, dpi: int = FIGURE_DPI) -> Path:
    """Write a figure as PNG under a temporary name, then rename (as every unimos output)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def method_colors(names: Sequence[str]) -> dict[str, str]:
    """One tab10 colour per method, in the order given (the same in every figure)."""
    cycle = plt.get_cmap("tab10").colors
    return {name: matplotlib.colors.to_hex(cycle[i % len(cycle)]) for i, name in enumerate(names)}


def organ_colors(names: Sequence[str]) -> dict[str, str]:
    """'#rrggbb' per organ from the project's colour table."""
    return {name: rgb_hex(rgb) for name, rgb in color_table(names).items()}


# ----------------------------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class CoverageRow:
    """One source of the manifest: how many of its cases annotate each class."""

    source: str
    modality: str
    kind: str
    n_cases: int
    annotated: tuple[int, ...]  # per class, in the order of the figure's columns


def coverage_figure(rows: Sequence[CoverageRow], classes: Sequence[str], path: Path) -> Path:
    """Heat map sources x classes: the share of a source's cases that annotate the class, 'k/n' in each cell."""
    share = np.array([[k / r.n_cases if r.n_cases else 0.0 for k in r.annotated] for r in rows], dtype=float)
    width = max(4.5, 1.6 + 0.55 * len(classes))
    height = max(1.8, 1.1 + 0.38 * len(rows))
    with figure(width, height) as (fig, axes):
        ax = axes[0, 0]
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        for i, row in enumerate(rows):
            for j, k in enumerate(row.annotated):
                ax.text(j, i, f"{k}/{row.n_cases}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(classes)), labels=list(classes), rotation=40, ha="right")
        ax.set_yticks(range(len(rows)), labels=[f"{r.source} ({r.modality}, {r.kind})" for r in rows])
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title("Annotation coverage: cases annotating each class / cases of the source")
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of cases annotated")
        return save(fig, path)


# ----------------------------------------------------------------------------------------------- training


def training_figure(logs: Sequence[TrainingLog], path: Path) -> Path:
    """Training loss per logged step for every run, validation Dice when any run measured it, and for the
    semi-supervised runs their supervised and unsupervised loss and share of confident pseudo-labels."""
    with_val = [log for log in logs if log.val_steps]
    semi = [log for log in logs if log.semi_supervised]
    colors = method_colors([log.label for log in logs])
    panels = 1 + bool(with_val) + 2 * bool(semi)
    ncols, nrows = min(panels, 2), math.ceil(panels / 2)
    with figure(9.0 if ncols == 2 else 5.5, 3.4 * nrows, nrows=nrows, ncols=ncols) as (fig, axes):
        free = iter(axes.ravel())
        ax = next(free)
        for log in logs:
            ax.plot(log.steps, log.loss, color=colors[log.label], lw=1.2, label=log.label)
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
        _loss_scale(ax, logs)
        ax.set_title("Training loss")
        ax.legend(frameon=False)
        if with_val:
            ax = next(free)
            for log in with_val:
                ax.plot(log.val_steps, log.val_dice, color=colors[log.label], lw=1.2, marker="o", ms=3,
                        label=log.label)
            ax.set_xlabel("iteration")
            ax.set_ylabel("mean Dice (validation cases)")
            ax.set_ylim(0.0, 1.0)
            ax.set_title("Validation Dice")
            ax.legend(frameon=False)
        if semi:
            _semi_supervised_panels(next(free), next(free), semi, colors)
        for ax in free:
            ax.set_visible(False)
        fig.tight_layout()
        return save(fig, path)


def run_curves_figure(logs: Sequence[TrainingLog], path: Path) -> Path:
    """The curves of one `unimos train` run: loss, learning rate, seconds per iteration, validation Dice if measured.

    Several logs (self-training rounds) share each panel, one colour per log.
    """
    colors = method_colors([log.label for log in logs])
    with_lr = any(math.isfinite(v) for log in logs for v in log.lr)
    with_val = [log for log in logs if log.val_steps]
    with_data = any(math.isfinite(v) for log in logs for v in log.data_seconds)
    semi = [log for log in logs if log.semi_supervised]
    nrows = math.ceil((2 + with_lr + bool(with_val) + 2 * bool(semi)) / 2)
    with figure(9.0, 3.2 * nrows, nrows=nrows, ncols=2) as (fig, axes):
        free = iter(axes.ravel())
        ax = next(free)
        _curves(ax, logs, colors, lambda log: (log.steps, log.loss), "Training loss", "training loss")
        _loss_scale(ax, logs)
        if with_lr:
            _curves(next(free), logs, colors, lambda log: (log.steps, log.lr), "Learning rate", "learning rate")
        ax = next(free)
        _curves(ax, logs, colors, lambda log: (log.steps, log.seconds), "Time per iteration",
                "seconds per iteration")
        if with_data:
            for log in logs:
                ax.plot(log.steps, log.data_seconds, color=colors[log.label], lw=1.0, ls="--",
                        marker="x" if len(log.steps) < 20 else None, ms=4, label=f"{log.label}: waiting for data")
            ax.legend(frameon=False)
        if with_val:
            ax = next(free)
            _curves(ax, with_val, colors, lambda log: (log.val_steps, log.val_dice), "Validation Dice",
                    "mean Dice (validation cases)")
            ax.set_ylim(0.0, 1.0)
        if semi:
            _semi_supervised_panels(next(free), next(free), semi, colors)
        for ax in free:
            ax.set_visible(False)
        fig.tight_layout()
        return save(fig, path)


def _semi_supervised_panels(loss_ax: plt.Axes, share_ax: plt.Axes, logs: Sequence[TrainingLog],
                            colors: dict[str, str]) -> None:
    """The supervised and unsupervised parts of a semi-supervised loss, and the share of confident pseudo-labels."""
    for log in logs:
        loss_ax.plot(log.steps, log.loss_labeled, color=colors[log.label], lw=1.2, label=f"{log.label}: labeled")
        loss_ax.plot(log.steps, log.loss_unlabeled, color=colors[log.label], lw=1.0, ls="--",
                     label=f"{log.label}: unlabeled")
    loss_ax.set_xlabel("iteration")
    loss_ax.set_ylabel("loss part")
    loss_ax.set_title("Supervised and unsupervised loss")
    loss_ax.legend(frameon=False)
    _curves(share_ax, logs, colors, lambda log: (log.steps, log.confident_share), "Confident pseudo-labels",
            "share of unlabeled voxels at or above tau")
    share_ax.set_ylim(0.0, 1.0)


def _curves(ax: plt.Axes, logs: Sequence[TrainingLog], colors: dict[str, str],
            series: Callable[[TrainingLog], tuple[Sequence[int], Sequence[float]]], title: str, ylabel: str) -> None:
    """One line per log of `series(log)` = (iterations, values); points marked while they are few."""
    for log in logs:
        x, y = series(log)
        ax.plot(x, y, color=colors[log.label], lw=1.2, marker="o" if len(x) < 20 else None, ms=3, label=log.label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False)


def _loss_scale(ax: plt.Axes, logs: Sequence[TrainingLog]) -> None:
    """A log scale when the losses span more than a factor 20 (strategies can lie an order of magnitude apart)."""
    finite = np.array([v for log in logs for v in log.loss if math.isfinite(v)])
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_yscale("log")


# ----------------------------------------------------------------------------------------------- results


def dsc_distribution_figure(methods: Sequence[MethodResult], structures: Sequence[str], path: Path) -> Path:
    """One panel per organ: a box per method over the per-case DSC, with every case as a point beside it."""
    colors = organ_colors(structures)
    ncols = min(len(structures), 4)
    nrows = math.ceil(len(structures) / ncols)
    panel = max(1.9, 0.55 * len(methods) + 0.9)
    rng = np.random.default_rng(0)  # fixed jitter: the same figure every time
    with figure(panel * ncols, 2.5 * nrows, nrows=nrows, ncols=ncols, sharey=True) as (fig, axes):
        for ax in axes.ravel()[len(structures):]:
            ax.set_visible(False)
        for ax, structure in zip(axes.ravel(), structures):
            for position, method in enumerate(methods):
                values = np.array([r.dsc for r in method.scores if r.structure == structure and r.scored
                                   and math.isfinite(r.dsc)])
                if values.size == 0:
                    continue
                box = ax.boxplot(values, positions=[position], widths=0.5, patch_artist=True, showfliers=False,
                                 medianprops={"color": "black", "lw": 1.2})
                for patch in box["boxes"]:
                    patch.set(facecolor=colors[structure], edgecolor="0.25", alpha=0.85)
                jitter = rng.uniform(-0.12, 0.12, size=values.size)
                ax.scatter(position + 0.38 + jitter, values, s=9, color="0.15", zorder=3, linewidths=0)
            ax.set_xticks(range(len(methods)), labels=[m.name for m in methods], rotation=30, ha="right")
            ax.set_xlim(-0.6, len(methods) - 0.2)
            ax.set_ylim(0.0, 1.02)
            ax.set_title(structure)
            ax.grid(axis="y", color="0.9", lw=0.6)
        for row in axes:
            row[0].set_ylabel("DSC per case")
        fig.suptitle("Per-case DSC by organ and method (box: quartiles; points: cases)")
        fig.tight_layout()
        return save(fig, path)
