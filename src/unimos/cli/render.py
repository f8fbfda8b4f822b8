"""Rich rendering of library results (tables, problems, progress) for the CLI."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from unimos.data.manifest_spec import SPLITS
from unimos.data.validation import InspectReport
from unimos.errors import Problem


def coverage_table(report: InspectReport) -> Table:
    """Classes x sources: cases annotating the class / cases in the source (classes as rows: there are more)."""
    coverage = report.coverage()
    sources = report.manifest.sources
    table = Table(title="Coverage (cases annotated / cases)")
    table.add_column("class")
    for source in sources:
        table.add_column(f"{source.name}\n{source.modality} {source.kind}", justify="center")
    for name in report.manifest.taxonomy.names[1:]:
        cells = []
        for source in sources:
            done, total = coverage[source.name][name]
            style = "green" if done == total and total else ("yellow" if done else "dim")
            cells.append(f"[{style}]{done}/{total}[/]")
        table.add_row(name, *cells)
    return table


def geometry_tables(report: InspectReport) -> list[Table]:
    """Per modality: case counts by split, orientations, and min / median / max of spacing and size."""
    tables = []
    for modality in sorted({c.modality for c in report.cases}):
        group = [c for c in report.cases if c.modality == modality]
        splits = ", ".join(f"{s} {sum(c.split == s for c in group)}" for s in SPLITS
                           if any(c.split == s for c in group))
        orientations = ", ".join(sorted({c.orientation for c in group}))
        table = Table(title=f"{modality}: {len(group)} cases ({splits}); orientations {orientations}")
        for column in ("", "min", "median", "max"):
            table.add_column(column, justify="right")
        for label, values, fmt in (("spacing mm", np.array([c.spacing_mm for c in group]), ".2f"),
                                   ("size voxels", np.array([c.shape for c in group]), ".0f")):
            rows = [values.min(axis=0), np.median(values, axis=0), values.max(axis=0)]
            table.add_row(label, *("x".join(format(v, fmt) for v in row) for row in rows))
        tables.append(table)
    return tables


def print_problems(console: Console, problems: list[Problem]) -> None:
    console.print(f"[bold red]{len(problems)} problem(s) found[/] (nothing was written):")
    for problem in problems:
        console.print(f"  [red]-[/] {escape(str(problem))}", soft_wrap=True, highlight=False)


class StepProgress(Protocol):
    """A stage's progress callback: `done` of `total` steps, and the training loss where there is one."""

    def __call__(self, done: int, total: int, loss: float | None = None) -> None: ...


ProgressFactory = Callable[[str], StepProgress]


def format_duration(seconds: float) -> str:
    """Seconds as '42s', '4m 05s' or '2h 03m': short enough for a log line."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


class PlainProgress:
    """Progress of one stage as plain lines, for logs and pipes where bars cannot be drawn (`unimos demo > log`).

    Prints the first update, then whenever `min_seconds` have passed or another `min_fraction` of the stage is
    done (whichever comes first), and always the last step; each line is flushed so that `tail -f` shows it.
    """

    def __init__(self, console: Console, label: str, *, min_seconds: float = 30.0, min_fraction: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.label = console, label
        self.min_seconds, self.min_fraction, self.clock = min_seconds, min_fraction, clock
        self.started = clock()
        self.first: tuple[float, int] | None = None  # (time, done) of the first update: the rate is measured from it
        self.printed: tuple[float, int] | None = None  # (time, done) of the last line printed

    def __call__(self, done: int, total: int, loss: float | None = None) -> None:
        now = self.clock()
        if self.first is None:
            self.first = (now, done)
        if self._due(now, done, total):
            self.printed = (now, done)
            self.console.print(self.line(now, done, total, loss), markup=False, highlight=False, soft_wrap=True)
            self.console.file.flush()

    def _due(self, now: float, done: int, total: int) -> bool:
        """Whether this update gets a line: the first, the last, or one a time or fraction threshold away."""
        if self.printed is None:
            return True
        printed_at, printed_done = self.printed
        if done == printed_done:
            return False
        next_slice = self._slice(done, total) > self._slice(printed_done, total)
        return done >= total or next_slice or now - printed_at >= self.min_seconds

    def _slice(self, done: int, total: int) -> int:
        """Which `min_fraction` slice of the stage `done` steps reach (the epsilon absorbs float error in 0.05 * n)."""
        return int(done / total / self.min_fraction + 1e-9) if total > 0 else 0

    def line(self, now: float, done: int, total: int, loss: float | None) -> str:
        """'label: done/total (pct%), loss, s/step, elapsed, time left', leaving out what is not known yet."""
        parts = [f"{self.label}: {done}/{total}" + (f" ({100 * done / total:.0f}%)" if total > 0 else "")]
        if loss is not None and math.isfinite(loss):
            parts.append(f"loss {loss:.4f}")
        seconds_per_step = self._seconds_per_step(now, done)
        if seconds_per_step is not None:
            parts.append(f"{seconds_per_step:.3g} s/step")
        parts.append(f"{format_duration(now - self.started)} elapsed")
        if seconds_per_step is not None and done < total:
            parts.append(f"{format_duration(seconds_per_step * (total - done))} left")
        return ", ".join(parts)

    def _seconds_per_step(self, now: float, done: int) -> float | None:
        """Mean seconds a step since the first update (not since the start: a resumed run starts part-way)."""
        if self.first is None or done <= self.first[1]:
            return None
        first_at, first_done = self.first
        return (now - first_at) / (done - first_done)


@contextlib.contextmanager
def progress_bars(console: Console, *, min_seconds: float = 30.0, min_fraction: float = 0.05,
                  clock: Callable[[], float] = time.monotonic) -> Iterator[ProgressFactory]:
    """A factory of progress callbacks, one per label: rich bars on a terminal, plain `PlainProgress` lines elsewhere.

    `min_seconds`, `min_fraction` and `clock` set how often plain lines are printed (tests pass a fake clock).
    """
    if not console.is_terminal:
        printers: dict[str, PlainProgress] = {}

        def plain_factory(label: str) -> StepProgress:
            if label not in printers:
                printers[label] = PlainProgress(console, label, min_seconds=min_seconds, min_fraction=min_fraction,
                                                clock=clock)
            return printers[label]

        yield plain_factory
        return
    bars = Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)
    tasks: dict[str, int] = {}

    def factory(label: str) -> StepProgress:
        def update(done: int, total: int, loss: float | None = None) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)
        return update

    with bars:
        yield factory


def strategy_table(name: str, summary: str, source: str, options: list) -> Table:
    """One strategy's options (key, default, valid values, meaning) under its summary and source."""
    table = Table(title=f"{name}: {summary}", caption=f"follows {source}", title_justify="left",
                  caption_justify="left")
    for column in ("option", "default", "valid values", "what it does"):
        table.add_column(column, overflow="fold")
    for doc in options:
        table.add_row(doc.key, doc.default, doc.valid, doc.meaning)
    if not options:
        table.add_row("(none)", "", "", "")
    return table


def results_table(results: dict, methods: list[str]) -> Table:
    """Classes x methods, each cell "DSC / NSD" (mean over the test cases, NSD at 2 mm): the organs and their mean,
    then the lesion classes and theirs where the results have them."""
    title = "Held-out test set: mean DSC / NSD at 2 mm (0-1, higher is better)"
    table = Table(title=title, min_width=len(title))  # as wide as its title, which would wrap otherwise
    table.add_column("class")
    methods = [m for m in methods if m in results]
    for method in methods:
        table.add_column(f"{method}\nDSC / NSD", justify="right")
    with_lesions = "lesion_mean" in results[methods[0]]
    means = {"mean": "mean (organs)" if with_lesions else "mean", "lesion_mean": "mean (lesions)"}
    for name in [k for k, v in results[methods[0]].items() if isinstance(v, dict)]:
        shown = f"[bold]{means[name]}[/]" if name in means else name
        table.add_row(shown, *(f"{results[m][name]['dsc']:.3f} / {results[m][name]['nsd']:.3f}" for m in methods))
    if all("seconds_per_iteration" in results[m] for m in methods):
        table.add_row("s / iteration", *(f"{results[m]['seconds_per_iteration']:.2f}" for m in methods))
    return table
