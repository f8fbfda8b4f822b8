"""The HTML report of a run: data, training, results and the worst cases, in one self-contained page.

`write_report(RUN_DIR)` writes RUN_DIR/report/index.html and its figures as PNG files in report/figures/,
referenced by relative paths: the folder can be copied, zipped or opened offline (no network, no script, one
small inline style sheet). Every figure is also a stand-alone PNG with title and legend, fit for a paper.

Sections, each made from what the folder holds (a section that cannot be made says what it needs):
- Run (a `unimos train` run folder only): what the run was, from its config.json and plan.json. Such a folder
  has no scores: its report has the Run and Training sections (and Data when a manifest is given), no more.
- Data (needs the manifest): annotation coverage, sources x classes, as a heat map; modality, splits, voxel
  size and image size per source, from the image headers only.
- Training (needs RUN_DIR/runs/<method>/log.csv, or RUN_DIR/log.csv of a train run): loss and validation Dice
  curves, one line per run; for a train run also its learning rate and seconds per iteration.
- Results (scores.csv + summary.json of each method): per-organ DSC/NSD with the methods side by side, the
  per-case DSC per organ and method as box and strip plots, tables per source and per modality.
- Cases (needs the manifest and the predictions for the views): the evaluated cases worst first by the first
  method's mean DSC, each with its DSC per organ and method and a montage of slices through every organ.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from unimos.data.colors import color_table, rgb_hex
from unimos.data.io import read_geometry
from unimos.data.manifest import Case, Manifest
from unimos.data.manifest_spec import SPLITS
from unimos.errors import OutputError, UnimosError
from unimos.evaluation.evaluate import StructureRecord
from unimos.report.case_views import ORIENTATION_NOTE, CaseFigure, render_case
from unimos.report.figures import (
    CoverageRow,
    coverage_figure,
    dsc_distribution_figure,
    run_curves_figure,
    training_figure,
)
from unimos.report.run_folder import (
    MethodResult,
    RunFolder,
    TrainRun,
    find_run_folder,
    finite_mean,
)
from unimos.utils.atomic import write_text_atomic

MAX_CASES = 12
REPORT_FOLDER, FIGURE_FOLDER = "report", "figures"
_BEST = ' class="best"'

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1120px; margin: 2em auto; padding: 0 1.2em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f4f6; } td:first-child, th:first-child { text-align: left; }
td.na { color: #8a5a00; font-style: italic; text-align: left; }
.note { background: #f6f6f8; border-left: 3px solid #b0b0c0; padding: 0.5em 0.8em; color: #444; }
.meta { color: #555; } .best { font-weight: 700; }
.swatch { display: inline-block; width: 0.85em; height: 0.85em; border: 1px solid #777; margin-right: 0.4em;
          vertical-align: -0.1em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #444; max-width: 60em; }
nav a { margin-right: 1em; }
"""


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *, manifest: str | Path | None = None,
                 predictions: str | Path | None = None, max_cases: int = MAX_CASES) -> Path:
    """Write the HTML report of a demo/run folder or of a `unimos evaluate` output folder; return index.html.

    Args:
        run_dir: the folder `unimos demo` wrote (evaluation/<method>/, runs/, predictions/, data/manifest.yaml),
            one `unimos evaluate` wrote (scores.csv, summary.json) or one `unimos train` wrote (config.json,
            plan.json, log.csv, checkpoints).
        out_dir: where index.html and figures/ go (default RUN_DIR/report).
        manifest: the manifest the predictions were scored against (default RUN_DIR/data/manifest.yaml); the
            data summary and the case views need it.
        predictions: the predictions of an evaluation folder (default: the folder around it, when it lies inside
            its predictions as `unimos evaluate` writes by default).
        max_cases: the number of worst cases shown.

    Raises:
        InputError: `run_dir` is not a folder a report can be made of (the message says what it lacks).
        OutputError: the report cannot be written.
    """
    run = find_run_folder(run_dir, manifest, predictions)
    out = Path(out_dir) if out_dir is not None else run.root / REPORT_FOLDER
    check_report_folder(out)
    figures = out / FIGURE_FOLDER
    if run.train is not None:
        sections = [("run", "Run", _run_section(run.train))]
        if run.manifest is not None:
            sections.append(("data", "Data", _data_section(run, figures)))
        sections.append(("training", "Training", _training_section(run, figures)))
    else:
        sections = [("data", "Data", _data_section(run, figures)),
                    ("training", "Training", _training_section(run, figures)),
                    ("results", "Results", _results_section(run, figures)),
                    ("cases", "Cases", _cases_section(run, figures, max_cases))]
    nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
    body = "\n".join(f'<section id="{key}">\n<h2>{title}</h2>\n{html}\n</section>' for key, title, html in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>unimos report: {escape(run.root.name)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>unimos report: {escape(run.root.name)}</h1>\n{_header(run)}\n<nav>{nav}</nav>\n{body}\n"
            "</body>\n</html>\n")
    index = out / "index.html"
    write_text_atomic(index, page)
    return index


# ----------------------------------------------------------------------------------------------- header


REPORT_MARK = "<title>unimos report:"  # in every index.html a report wrote: it may replace its own report


def check_report_folder(out: Path) -> None:
    """A report replaces only an earlier report (index.html + figures/); a folder holding anything else (a user's
    own index.html among it) is refused before a figure is drawn."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(out, "is a file, not a folder", "give --out a folder for the report")
    others = sorted(p.name for p in out.iterdir() if p.name not in ("index.html", FIGURE_FOLDER))
    index = out / "index.html"
    foreign_index = index.is_file() and REPORT_MARK not in index.read_text(encoding="utf-8", errors="replace")[:2000]
    if others or foreign_index:
        found = ", ".join((["index.html (not a unimos report)"] if foreign_index else []) + others[:5])
        raise OutputError(out, f"holds files that a unimos report did not write ({found})",
                          "give --out a new or empty folder, or the folder of an earlier unimos report")


def _header(run: RunFolder) -> str:
    if run.train is not None:
        return _train_header(run, run.train)
    if not run.methods:
        return ('<p class="meta"><b>folder</b>: ' + escape(str(run.root.absolute())) + "</p>\n"
                + _note("No evaluation yet: this folder holds no evaluation/&lt;method&gt;/summary.json. Run "
                        "<code>unimos predict</code> and <code>unimos evaluate</code> (or let <code>unimos demo</code> "
                        "finish); the results and case views appear then."))
    first = run.methods[0].summary
    split = first.get("split") or "all labeled cases"
    items = [("folder", str(run.root.absolute())),
             ("written", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
             ("methods", ", ".join(m.name for m in run.methods)),
             ("split scored", str(split)),
             ("cases scored", ", ".join(f"{m.summary.get('n_cases', '?')} ({m.name})" for m in run.methods)),
             ("NSD tolerance", f"{_tolerance(run):g} mm")]
    if run.manifest_path is not None:
        items.append(("manifest", str(run.manifest_path)))
    meta = run.meta
    for key, label in (("iterations_per_method", "iterations per method"),
                       ("iterations_per_strategy", "iterations per strategy"), ("seed", "seed"),
                       ("device", "device")):
        if key in meta:
            items.append((label, str(meta[key])))
    return '<p class="meta">' + "<br>\n".join(f"<b>{escape(k)}</b>: {escape(v)}" for k, v in items) + "</p>"


def _train_header(run: RunFolder, train: TrainRun) -> str:
    """What a `unimos train` run folder is: its method, strategy and how far it got; scores come from elsewhere."""
    config = train.config
    items = [("folder", str(run.root.absolute())),
             ("written", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
             ("method", str(config.get("method", "?"))), ("strategy", str(config.get("strategy", "?"))),
             ("network", str(config.get("network", "?"))), ("iterations", _progress(run, train))]
    final = train.folder / "checkpoint_final"
    when = "" if train.finished else " once it has finished"
    return ('<p class="meta">' + "<br>\n".join(f"<b>{escape(k)}</b>: {escape(v)}" for k, v in items) + "</p>\n"
            + _note("A <code>unimos train</code> run: it holds no scores, so this page shows what the run was and "
                    f"its training curves. To score it{when}: <code>unimos predict "
                    f"{escape(str(final))} IMAGES --out PREDICTIONS</code>, then <code>unimos evaluate PREDICTIONS "
                    "MANIFEST</code>; that writes the results and case views."))


def _progress(run: RunFolder, train: TrainRun) -> str:
    """Iterations done of those configured, and whether the run finished or stopped (which checkpoint is last)."""
    planned = train.config.get("iterations", "?")
    done = train.checkpoint_step if train.checkpoint_step is not None else \
        max((log.steps[-1] for log in run.logs), default="?")
    rounds = f" per round, {train.rounds} rounds" if train.rounds else ""
    if train.finished:
        return f"{done} of {planned}{rounds} (finished: checkpoint_final)"
    if train.checkpoint is not None:
        return f"{done} of {planned}{rounds} (stopped or still running; last checkpoint: {train.checkpoint})"
    return f"{done} of {planned}{rounds} (no checkpoint yet)"


def _tolerance(run: RunFolder) -> float:
    if not run.methods:
        return math.nan
    value = run.methods[0].summary.get("tolerance_mm")
    return float(value) if isinstance(value, (int, float)) else math.nan


# ----------------------------------------------------------------------------------------------- run

_CONFIG_ROWS = (("method", "method"), ("strategy", "strategy"), ("strategy_options", "strategy options"),
                ("network", "network"), ("deep_supervision", "deep supervision"), ("iterations", "iterations"),
                ("batch_size", "batch size"), ("optimizer", "optimizer"), ("learning_rate", "learning rate"),
                ("weight_decay", "weight decay"), ("schedule", "learning rate schedule"),
                ("sampler", "patch sampler"), ("foreground_fraction", "foreground fraction"),
                ("augment", "augmentation"), ("precision", "precision"), ("validate_every", "validation every"),
                ("train_splits", "training splits"), ("seed", "seed"), ("device", "device"))
_PLAN_ROWS = (("preset", "preset"), ("target_spacing_mm", "target spacing (mm)"), ("patch_size", "patch (voxels)"),
              ("batch_size", "batch size"), ("crop_to_body", "crop to body"))


def _run_section(train: TrainRun) -> str:
    """The run's settings from config.json and the plan it trained on from plan.json, as two tables."""
    config, plan = train.config, train.plan
    parts = [(f"<p>Settings of the run in <code>{escape(str(train.folder))}</code>, as <code>unimos train</code> "
              "saved them.</p>")]
    if config:
        rows = [(label, _config_value(key, config[key], plan)) for key, label in _CONFIG_ROWS if key in config]
        parts.append("<h3>Training (config.json)</h3>\n" + _key_table("run-config", rows))
    else:
        parts.append(_note(f"{escape(str(train.folder / 'config.json'))} cannot be read: the settings are unknown."))
    if plan:
        rows = [(label, _text(plan[key])) for key, label in _PLAN_ROWS if key in plan]
        classes = [c.get("name", "?") for c in plan.get("classes", []) if isinstance(c, dict)]
        if classes:
            rows.append(("classes", ", ".join(classes)))
        schemes = plan.get("normalisation")
        if isinstance(schemes, dict):
            rows.append(("normalisation", ", ".join(f"{m}: {v.get('scheme', '?')}" for m, v in schemes.items()
                                                    if isinstance(v, dict))))
        parts.append("<h3>Plan (plan.json)</h3>\n" + _key_table("run-plan", rows))
    else:
        parts.append(_note(f"{escape(str(train.folder / 'plan.json'))} is missing or cannot be read: the spacing "
                           "and patch are unknown."))
    return "\n".join(parts)


def _config_value(key: str, value: Any, plan: dict[str, Any]) -> str:
    """A config.json value as a reader understands it (0 means 'the plan's' for the batch, 'never' for validation)."""
    if key == "batch_size" and value == 0:
        return f"{_text(plan.get('batch_size', '?'))} (the plan's)"
    if key == "validate_every":
        return "never" if not value else f"{value} iterations"
    if key == "strategy_options" and not value:
        return "defaults"
    return _text(value)


def _text(value: Any) -> str:
    """Lists as 'a × b × c' (numbers) or 'a, b'; dicts as 'k=v'; booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return (" × " if numbers and value else ", ").join(f"{v:g}" if numbers else _text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return "–" if value is None else str(value)


def _key_table(table_id: str, rows: Sequence[tuple[str, str]]) -> str:
    body = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="{table_id}">\n{body}</table>'


# ----------------------------------------------------------------------------------------------- data


def _data_section(run: RunFolder, figures: Path) -> str:
    if run.manifest is None:
        return _note(f"Not shown: {escape(run.manifest_note or '')}. The coverage and geometry summary need the "
                     "manifest the predictions were scored against (write_report(..., manifest=PATH)).")
    manifest = run.manifest
    classes = manifest.taxonomy.names[1:]
    rows = [CoverageRow(s.name, s.modality, s.kind, len(cases),
                        tuple(sum(1 for c in cases if name in c.annotated_classes) for name in classes))
            for s in manifest.sources for cases in [manifest.cases_of(s.name)]]
    parts = [(f"<p>Manifest <code>{escape(str(manifest.path))}</code>: project <b>{escape(manifest.name)}</b>, "
              f"{len(classes)} classes, {len(manifest.sources)} sources, {len(manifest.cases)} cases.</p>")]
    if rows and classes:
        coverage_figure(rows, classes, figures / "coverage.png")
        parts.append(_figure("coverage.png", "Annotation coverage: for each source (rows) and class (columns), "
                             "the cases whose reference annotates the class out of the source's cases. Unlabeled "
                             "sources annotate nothing; sparse sources annotate their classes on a few slices."))
    parts.append(_geometry_table(manifest))
    return "\n".join(parts)


def _geometry_table(manifest: Manifest) -> str:
    """Per source: modality, kind, cases per split, voxel size and image size along R-L, A-P, S-I (headers only)."""
    header = ("<tr><th>source</th><th>modality</th><th>kind</th>"
              + "".join(f"<th>{s}</th>" for s in SPLITS)
              + "<th>voxel size R-L × A-P × S-I (mm): median (range)</th><th>size (voxels): median</th></tr>")
    lines, unreadable = [], []
    for source in manifest.sources:
        cases = manifest.cases_of(source.name)
        spacings, shapes = [], []
        for case in cases:
            geometry = _ras_geometry(case)
            if geometry is None:
                unreadable.append(case.case_id)
                continue
            spacings.append(geometry[0])
            shapes.append(geometry[1])
        counts = "".join(f"<td>{sum(1 for c in cases if c.split == s)}</td>" for s in SPLITS)
        lines.append(f"<tr><td>{escape(source.name)}</td><td>{escape(source.modality)}</td><td>{source.kind}</td>"
                     f"{counts}<td>{_spacing_text(spacings)}</td><td>{_shape_text(shapes)}</td></tr>")
    by_modality: dict[str, int] = {}
    for case in manifest.cases:
        by_modality[case.modality] = by_modality.get(case.modality, 0) + 1
    summary = ", ".join(f"{m}: {n} case(s)" for m, n in by_modality.items())
    note = _note(f"Header unreadable, left out: {', '.join(unreadable[:20])}"
                 + (f" and {len(unreadable) - 20} more" if len(unreadable) > 20 else "")) if unreadable else ""
    return (f"<h3>Modalities and geometry</h3>\n<p>{escape(summary)}. Voxel and image sizes from the image headers "
            "(first channel), along the patient axes whatever the files' orientation.</p>\n"
            f'<table id="geometry">{header}\n' + "\n".join(lines) + f"</table>\n{note}")


def _ras_geometry(case: Case) -> tuple[np.ndarray, np.ndarray] | None:
    """(voxel size, shape) along R-L, A-P, S-I from the image header; None when it cannot be read."""
    if not case.image_paths:
        return None
    try:
        shape, affine = read_geometry(case.image_paths[0])
    except UnimosError:
        return None
    ornt = nib.io_orientation(affine)  # row i: the patient axis that voxel axis i runs along
    spacing, size = np.zeros(3), np.zeros(3, dtype=int)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    for axis, (patient_axis, _flip) in enumerate(ornt):
        spacing[int(patient_axis)] = zooms[axis]
        size[int(patient_axis)] = shape[axis]
    return spacing, size


def _spacing_text(spacings: Sequence[np.ndarray]) -> str:
    if not spacings:
        return "–"
    values = np.array(spacings)
    parts = []
    for axis in range(3):
        low, mid, high = values[:, axis].min(), float(np.median(values[:, axis])), values[:, axis].max()
        parts.append(f"{mid:.2f}" if np.isclose(low, high) else f"{mid:.2f} ({low:.2f}–{high:.2f})")
    return " × ".join(parts)


def _shape_text(shapes: Sequence[np.ndarray]) -> str:
    if not shapes:
        return "–"
    return " × ".join(str(int(v)) for v in np.median(np.array(shapes), axis=0))


# ----------------------------------------------------------------------------------------------- training


def _training_section(run: RunFolder, figures: Path) -> str:
    if run.train is not None:
        return _train_run_curves(run, run.train, figures)
    if not run.logs:
        where = run.root / "runs" / "<method>" / "log.csv"
        return _note(f"Not shown: no training log was found ({escape(str(where))}, as `unimos train` writes it). "
                     + ("This folder holds an evaluation only; make the report of the run folder to see training."
                        if run.layout == "evaluation" else ""))
    training_figure(run.logs, figures / "training.png")
    return _figure("training.png", "Training loss at each logged iteration (left) and, where measured, the mean "
                   "Dice on the validation cases (right), per run. Each method's loss is its own objective: compare "
                   "curves of one method, not levels across methods.") + "\n" + _training_table(run)


def _train_run_curves(run: RunFolder, train: TrainRun, figures: Path) -> str:
    """The curves of a `unimos train` run folder: loss, learning rate, time per iteration, validation Dice."""
    if not run.logs:
        log = escape(str(train.folder / "log.csv"))
        every = train.config.get("log_every", "log_every")
        return _note(f"Not shown: {log} holds no logged iteration yet (<code>unimos train</code> writes one row "
                     f"every {escape(str(every))} iterations and at the last one).")
    run_curves_figure(run.logs, figures / "training.png")
    return _figure("training.png", "Training loss, learning rate and seconds per iteration (dashed: of which "
                   "waiting for data) at each logged iteration and, where measured, the mean Dice on the "
                   "validation cases.") + "\n" + _training_table(run)


def _training_table(run: RunFolder) -> str:
    """Per run: iterations, last loss, best validation Dice, median seconds per iteration and of data loading."""
    rows = []
    for log in run.logs:
        best = int(np.argmax(log.val_dice)) if log.val_dice else None
        val = f"{log.val_dice[best]:.3f} (iteration {log.val_steps[best]})" if best is not None else "–"
        seconds = [s for s in log.seconds if math.isfinite(s)]
        data = [s for s in log.data_seconds if math.isfinite(s)]
        rows.append(f"<tr><td>{escape(log.label)}</td><td>{log.steps[-1]}</td><td>{_num(log.loss[-1], 4)}</td>"
                    f"<td>{val}</td><td>{_num(float(np.median(seconds)) if seconds else math.nan, 3)}</td>"
                    f"<td>{_num(float(np.median(data)) if data else math.nan, 3)}</td></tr>")
    return ("<table id=\"training-table\"><tr><th>run</th><th>iterations</th><th>last loss</th>"
            "<th>best validation Dice</th><th>s / iteration (median of logged)</th>"
            "<th>of which data (s)</th></tr>\n" + "\n".join(rows) + "</table>")


# ----------------------------------------------------------------------------------------------- results


def _results_section(run: RunFolder, figures: Path) -> str:
    if not run.methods:
        return _note("Missing: no evaluation in this folder yet (evaluation/&lt;method&gt;/scores.csv and "
                     "summary.json).")
    structures = run.structures
    tolerance = _tolerance(run)
    parts = [(f"<p>Scores on what each reference annotates (unannotated organs of partial references are not "
              f"scored). DSC and NSD at {tolerance:g} mm: mean over the cases that annotate the organ; HD95 in mm "
              "over the cases where both masks are non-empty. The best DSC per organ is in bold.</p>")]
    for method in run.methods:
        missing = method.summary.get("missing") or []
        if missing:
            parts.append(_note(f"{escape(method.name)}: no prediction for {escape(', '.join(missing))} "
                               "(not scored)."))
    parts.append("<h3>Per organ</h3>\n" + _per_organ_table(run.methods, structures, tolerance))
    if structures and any(m.scores for m in run.methods):
        dsc_distribution_figure(run.methods, structures, figures / "dsc_per_case.png")
        parts.append(_figure("dsc_per_case.png", "DSC per case, one panel per organ (in its colour), one box per "
                             "method: the box spans the quartiles, the line is the median, each point one case."))
    parts.append("<h3>Per source</h3>\n" + _group_table(
        run.methods, "source", lambda m: m.summary.get("per_source", {}).keys(),
        lambda m, key: _from_summary(m.summary.get("per_source", {}).get(key)), tolerance, "per-source"))
    parts.append("<h3>Per modality</h3>\n" + _group_table(
        run.methods, "modality", lambda m: dict.fromkeys(r.modality for r in m.scores).keys(),
        lambda m, key: _from_rows([r for r in m.scores if r.modality == key]), tolerance, "per-modality"))
    return "\n".join(parts)


def _per_organ_table(methods: Sequence[MethodResult], structures: Sequence[str], tolerance: float) -> str:
    colors = {name: rgb_hex(rgb) for name, rgb in color_table(structures).items()}
    head = ("<tr><th rowspan=\"2\">organ</th>" + "".join(f'<th colspan="3">{escape(m.name)}</th>' for m in methods)
            + "</tr>\n<tr>" + f"<th>n</th><th>DSC</th><th>NSD@{tolerance:g}mm</th>" * len(methods) + "</tr>")
    rows = []
    for structure in structures:
        entries = [m.summary.get("per_structure", {}).get(structure) or {} for m in methods]
        best = _best([_float(e.get("dsc")) for e in entries])
        cells = "".join(f"<td>{e.get('n', '–')}</td><td{_BEST if i == best else ''}>{_num(e.get('dsc'))}</td>"
                        f"<td>{_num(e.get('nsd'))}</td>" for i, e in enumerate(entries))
        rows.append(f"<tr><td>{_swatch(colors[structure])}{escape(structure)}</td>{cells}</tr>")
    means = [m.summary.get("mean") or {} for m in methods]
    cells = "".join(f"<td>{e.get('structures', '–')}</td><td>{_num(e.get('dsc'))}</td><td>{_num(e.get('nsd'))}</td>"
                    for e in means)
    rows.append(f"<tr><td><b>mean over organs</b></td>{cells}</tr>")
    return f'<table id="per-organ">{head}\n' + "\n".join(rows) + "</table>"


def _group_table(methods: Sequence[MethodResult], label: str, keys: Callable[[MethodResult], Iterable[str]],
                 stats: Callable[[MethodResult, str], dict[str, Any]], tolerance: float, table_id: str) -> str:
    """Methods side by side per group (a source, a modality): cases, DSC, NSD, HD95 from `stats(method, group)`."""
    groups = list(dict.fromkeys(k for m in methods for k in keys(m)))
    if not groups:
        return _note(f"No {label} in the scores.")
    head = (f"<tr><th rowspan=\"2\">{label}</th>" + "".join(f'<th colspan="4">{escape(m.name)}</th>' for m in methods)
            + "</tr>\n<tr>" + f"<th>cases</th><th>DSC</th><th>NSD@{tolerance:g}mm</th><th>HD95 (mm)</th>"
            * len(methods) + "</tr>")
    rows = []
    for group in groups:
        cells = ""
        for method in methods:
            s = stats(method, group)
            cells += (f"<td>{s['cases']}</td><td>{_num(s['dsc'])}</td><td>{_num(s['nsd'])}</td>"
                      f"<td>{_num(s['hd95'], 2)}</td>")
        rows.append(f"<tr><td>{escape(group)}</td>{cells}</tr>")
    return f'<table id="{table_id}">{head}\n' + "\n".join(rows) + "</table>"


def _from_summary(entry: dict[str, Any] | None) -> dict[str, Any]:
    entry = entry or {}
    return {"cases": entry.get("cases", "–"), "dsc": _float(entry.get("dsc")), "nsd": _float(entry.get("nsd")),
            "hd95": _float(entry.get("hd95"))}


def _from_rows(rows: Sequence[StructureRecord]) -> dict[str, Any]:
    """Mean over the scored rows (case x structure), NaN left out: how `unimos evaluate` aggregates a source."""
    scored = [r for r in rows if r.scored]
    return {"cases": len({r.case_id for r in rows}) if rows else "–",
            "dsc": finite_mean(r.dsc for r in scored), "nsd": finite_mean(r.nsd for r in scored),
            "hd95": finite_mean(r.hd95 for r in scored)}


# ----------------------------------------------------------------------------------------------- cases


def _cases_section(run: RunFolder, figures: Path, max_cases: int) -> str:
    if not run.methods:
        return _note("Missing: case views need an evaluation (which cases were scored, and how well).")
    drawn_by = run.methods[0]
    order = _worst_first(run)
    shown = order[:max_cases]
    parts = [(f"<p>The evaluated cases, worst first by the mean DSC of <b>{escape(drawn_by.name)}</b> over the "
              "organs each case annotates; the views show that method's prediction.</p>")]
    if len(order) > len(shown):
        parts.append(_note(f"Showing the {len(shown)} worst of {len(order)} cases."))
    cases = {c.case_id: c for c in run.manifest.cases} if run.manifest is not None else {}
    if run.manifest is None:
        parts.append(_note(f"No case views: {escape(run.manifest_note or '')}. They need the manifest (images and "
                           "references) and the predictions folder: write_report(..., manifest=PATH, "
                           "predictions=FOLDER). The scores per case are listed."))
    elif drawn_by.predictions_dir is None:
        parts.append(_note(f"No predictions folder was found for {escape(drawn_by.name)}: the views show the "
                           "reference alone. Give it with write_report(..., predictions=FOLDER)."))
    structures = run.manifest.taxonomy.names[1:] if run.manifest is not None else run.structures
    colors = {name: rgb_hex(rgb) for name, rgb in color_table(structures).items()}
    for rank, case_id in enumerate(shown, start=1):
        parts.append(_case_article(run, rank, case_id, cases.get(case_id), structures, colors, figures))
    return "\n".join(parts)


def _case_article(run: RunFolder, rank: int, case_id: str, case: Case | None, structures: Sequence[str],
                  colors: dict[str, str], figures: Path) -> str:
    """One case: heading with its mean DSC, its DSC per organ and method, and its montage when it can be drawn."""
    drawn_by = run.methods[0]
    rows = [r for m in run.methods for r in m.scores if r.case_id == case_id]
    about = (f"{case.source.name}, {case.modality}, {case.kind} reference" if case is not None
             else f"{rows[0].source}, {rows[0].modality}" if rows else "")
    parts = [(f'<article id="case-{escape(case_id)}">\n<h3>{rank}. {escape(case_id)}: mean DSC '
              f"{_num(drawn_by.case_mean_dsc(case_id))} ({escape(drawn_by.name)})</h3>\n"
              f'<p class="meta">{escape(about)}</p>'), _case_table(run.methods, case_id, case, structures, colors)]
    if case is not None and run.manifest is not None:
        name = f"case_{rank:02d}_{_safe(case_id)}.png"
        dsc = {r.structure: r.dsc for r in drawn_by.scores if r.case_id == case_id}
        try:
            view = render_case(case, run.manifest.taxonomy, drawn_by.prediction_path(case_id), drawn_by.name,
                               figures / name, dsc)
        except UnimosError as err:
            parts.append(_note(f"No view: {escape(str(err))}"))
        else:
            parts.append(_figure(name, _case_caption(view)))
    elif run.manifest is not None:
        parts.append(_note(f"{escape(case_id)} is not in the manifest {escape(str(run.manifest.path))}: no view."))
    parts.append("</article>")
    return "\n".join(parts)


def _worst_first(run: RunFolder) -> list[str]:
    first = run.methods[0]
    ids = list(dict.fromkeys(r.case_id for r in first.scores)) + [c for c in run.case_ids
                                                                 if c not in {r.case_id for r in first.scores}]

    def key(case_id: str) -> tuple[bool, float, str]:
        value = first.case_mean_dsc(case_id)
        return (not math.isfinite(value), value if math.isfinite(value) else 0.0, case_id)

    return sorted(ids, key=key)


def _case_table(methods: Sequence[MethodResult], case_id: str, case: Case | None, structures: Sequence[str],
                colors: dict[str, str]) -> str:
    head = "<tr><th>organ</th>" + "".join(f"<th>DSC {escape(m.name)}</th>" for m in methods) + "</tr>"
    by_method = [{r.structure: r for r in m.scores if r.case_id == case_id} for m in methods]
    rows = []
    for structure in structures:
        label = f"{_swatch(colors[structure])}{escape(structure)}"
        if case is not None and structure not in case.annotated_classes:
            rows.append(f'<tr><td>{label}</td><td class="na" colspan="{len(methods)}">not annotated in the '
                        "reference (not scored, not drawn as a miss)</td></tr>")
            continue
        cells = "".join(f"<td>{_case_cell(rows_of.get(structure))}</td>" for rows_of in by_method)
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    return f'<table class="case-scores">{head}\n' + "\n".join(rows) + "</table>"


def _case_cell(row: StructureRecord | None) -> str:
    if row is None:
        return "not scored"
    if not row.scored:
        return "absent in both"
    return _num(row.dsc)


def _case_caption(shown: CaseFigure) -> str:
    parts = ["First row through the centre of the largest annotated organ, "
             "then one row per organ through its centre, zoomed to it. Reference outlines solid"
             + (f", prediction of {escape(shown.method)} dashed" if shown.has_prediction
                else " (no prediction drawn)")
             + f", each in the organ's colour. {escape(ORIENTATION_NOTE)} {escape(shown.window)}."]
    if shown.not_annotated:
        parts.append(f"Not annotated in the reference: {escape(', '.join(shown.not_annotated))} (a prediction "
                     "there is drawn dashed, marked so, and not counted as a miss).")
    if shown.absent:
        parts.append("Annotated but empty in reference and prediction: " + escape(", ".join(shown.absent)) + ".")
    parts.extend(escape(n[0].upper() + n[1:]) + "." for n in shown.notes)
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------- pieces


def _figure(name: str, caption: str) -> str:
    """A figure by its relative path (figures/NAME), captioned; `caption` is HTML already escaped."""
    return (f'<figure><img src="{FIGURE_FOLDER}/{escape(name)}" alt="{escape(Path(name).stem)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _note(html: str) -> str:
    return f'<p class="note">{html}</p>'


def _swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{color}"></span>'


def _best(values: Sequence[float]) -> int | None:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    return max(finite)[1] if len(values) > 1 and finite else None


def _num(value: Any, digits: int = 3) -> str:
    value = _float(value)
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]

