"""Rich rendering of library results (tables, problems, progress) for the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unimos.data.validation import InspectReport
from unimos.errors import Problem


def coverage_table(report: InspectReport) -> Table:
    """Sources x classes: cases annotating the class / cases in the source."""
    coverage = report.coverage()
    classes = report.manifest.taxonomy.names[1:]
    table = Table(title="Coverage (cases annotated / cases)", show_lines=False)
    table.add_column("source")
    table.add_column("modality")
    table.add_column("kind")
    for name in classes:
        table.add_column(name.replace("_", " "), justify="center")
    for source in report.manifest.sources:
        cells = []
        for name in classes:
            done, total = coverage[source.name][name]
            style = "green" if done == total and total else ("yellow" if done else "dim")
            cells.append(f"[{style}]{done}/{total}[/]")
        table.add_row(source.name, source.modality, source.kind, *cells)
    return table


def geometry_table(report: InspectReport) -> Table:
    """Modalities, splits, and spacing/size ranges of the readable cases."""
    table = Table(title="Images")
    for column in ("modality", "cases", "splits", "spacing mm (min / median / max)", "size voxels (min / median / max)",
                   "orientations"):
        table.add_column(column)
    for modality in sorted({c.modality for c in report.cases}):
        group = [c for c in report.cases if c.modality == modality]
        spacing = np.array([c.spacing_mm for c in group])
        shape = np.array([c.shape for c in group])
        splits = ", ".join(f"{s} {sum(c.split == s for c in group)}" for s in ("train", "validation", "test")
                           if any(c.split == s for c in group))

        def trio(values: np.ndarray, fmt: str) -> str:
            rows = [values.min(axis=0), np.median(values, axis=0), values.max(axis=0)]
            return " / ".join("x".join(format(v, fmt) for v in row) for row in rows)

        table.add_row(modality, str(len(group)), splits, trio(spacing, ".2f"), trio(shape, ".0f"),
                      ", ".join(sorted({c.orientation for c in group})))
    return table


def print_problems(console: Console, problems: list[Problem]) -> None:
    console.print(f"[bold red]{len(problems)} problem(s) found[/] (nothing was written):")
    for problem in problems:
        console.print(f"  [red]-[/] {problem}", soft_wrap=True, highlight=False)


@contextlib.contextmanager
def progress_bars(console: Console) -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """A factory of progress callbacks, one bar per label, drawn while the block runs."""
    bars = Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False, disable=not console.is_terminal)
    tasks: dict[str, int] = {}

    def factory(label: str) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)
        return update

    with bars:
        yield factory
