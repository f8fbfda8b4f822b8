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
        splits = ", ".join(f"{s} {sum(c.split == s for c in group)}" for s in ("train", "validation", "test")
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


def results_table(results: dict, methods: list[str]) -> Table:
    """Organs x methods, DSC / NSD, with the mean row last."""
    table = Table(title="Held-out test set: DSC / NSD (2 mm)")
    table.add_column("organ")
    for method in methods:
        table.add_column(method, justify="right")
    methods = [m for m in methods if m in results]
    organs = [k for k, v in results[methods[0]].items() if k != "mean" and isinstance(v, dict)] + ["mean"]
    for organ in organs:
        style = "bold" if organ == "mean" else ""
        table.add_row(f"[{style}]{organ}[/]" if style else organ,
                      *(f"{results[m][organ]['dsc']:.3f} / {results[m][organ]['nsd']:.3f}" for m in methods))
    if all("seconds_per_iteration" in results[m] for m in methods):
        table.add_row("s / iteration", *(f"{results[m]['seconds_per_iteration']:.2f}" for m in methods))
    return table
