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
import json
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from unimos.data.plan_spec import Plan
from unimos.errors import OutputError
from unimos.report.data_html import data_section
from unimos.report.figures import (
    run_curves_figure,
    training_figure,
)
from unimos.report.markup import FIGURE_FOLDER, figure_html, key_table, note, nsd_tolerance, num, plain_text
from unimos.report.results_html import cases_section, results_section
from unimos.report.run_folder import (
    RunFolder,
    TrainRun,
    find_run_folder,
)
from unimos.utils.atomic import write_text_atomic

MAX_CASES = 12
REPORT_FOLDER = "report"

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
        sections = [("run", "Run", _run_section(run.train) + _stages_section(run.root))]
        if run.manifest is not None:
            sections.append(("data", "Data", data_section(run, figures)))
        sections.append(("training", "Training", _training_section(run, figures)))
    else:
        sections = [("data", "Data", data_section(run, figures)),
                    ("training", "Training", _training_section(run, figures)),
                    ("results", "Results", results_section(run, figures)),
                    ("cases", "Cases", cases_section(run, figures, max_cases))]
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
                + note("No evaluation yet: this folder holds no evaluation/&lt;method&gt;/summary.json. Run "
                        "<code>unimos predict</code> and <code>unimos evaluate</code> (or let <code>unimos demo</code> "
                        "finish); the results and case views appear then."))
    first = run.methods[0].summary
    split = first.get("split") or "all labeled cases"
    items = [("folder", str(run.root.absolute())),
             ("written", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
             ("methods", ", ".join(m.name for m in run.methods)),
             ("split scored", str(split)),
             ("cases scored", ", ".join(f"{m.summary.get('n_cases', '?')} ({m.name})" for m in run.methods)),
             ("NSD tolerance", f"{nsd_tolerance(run):g} mm")]
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
    stage = _lesion_stage_of(run.root)
    lesions = f" --lesion-model {escape(stage)}" if stage else ""
    return ('<p class="meta">' + "<br>\n".join(f"<b>{escape(k)}</b>: {escape(v)}" for k, v in items) + "</p>\n"
            + note("A <code>unimos train</code> run: it holds no scores, so this page shows what the run was and "
                    f"its training curves. To score it{when}: <code>unimos predict "
                    f"{escape(str(final))} IMAGES --out PREDICTIONS{lesions}</code>, then <code>unimos evaluate "
                    "PREDICTIONS MANIFEST</code>; that writes the results and case views."))


def _lesion_stage_of(root: Path) -> str | None:
    """The lesion stage a progressive run trained (RUN/progressive.json), to predict with its organ model."""
    stage = _progressive_record(root).get("lesion_stage")
    return stage if isinstance(stage, str) else None


def _progressive_record(root: Path) -> dict[str, Any]:
    """RUN/progressive.json of a progressive run; empty for other runs or an unreadable record."""
    try:
        record = json.loads((root / "progressive.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


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


# ----------------------------------------------------------------------------------------------- run

_CONFIG_ROWS = (("method", "method"), ("strategy", "strategy"), ("strategy_options", "strategy options"),
                ("network", "network"), ("deep_supervision", "deep supervision"), ("iterations", "iterations"),
                ("batch_size", "batch size"), ("optimizer", "optimizer"), ("learning_rate", "learning rate"),
                ("weight_decay", "weight decay"), ("schedule", "learning rate schedule"),
                ("sampler", "patch sampler"), ("foreground_fraction", "foreground fraction"),
                ("augment", "augmentation"), ("precision", "precision"), ("validate_every", "validation every"),
                ("train_splits", "training splits"), ("seed", "seed"), ("device", "device"))


def _run_section(train: TrainRun) -> str:
    """The run's settings from config.json and the plan it trained on from plan.json, as two tables."""
    config, plan = train.config, train.plan
    parts = [(f"<p>Settings of the run in <code>{escape(str(train.folder))}</code>, as <code>unimos train</code> "
              "saved them.</p>")]
    if config:
        rows = [(label, _config_value(key, config[key], plan)) for key, label in _CONFIG_ROWS if key in config]
        parts.append("<h3>Training (config.json)</h3>\n" + key_table("run-config", rows))
    else:
        parts.append(note(f"{escape(str(train.folder / 'config.json'))} cannot be read: the settings are unknown."))
    if plan is not None:
        parts.append("<h3>Plan (plan.json)</h3>\n" + key_table("run-plan", _plan_rows(plan)))
    else:
        parts.append(note(f"{escape(str(train.folder / 'plan.json'))} is missing or cannot be read as a plan: the "
                           "spacing and patch are unknown."))
    return "\n".join(parts)


def _stages_section(root: Path) -> str:
    """The stages of a progressive run (RUN/progressive.json): each stage's classes and cases, which cases its
    organ pseudo-labels completed and which lesion-source cases it left out; empty for other runs."""
    stages = _progressive_record(root).get("stages")
    if not isinstance(stages, list):
        return ""
    rows = []
    for stage in stages:
        classes = ", ".join(str(c.get("name", "?")) for c in stage.get("classes", []) if isinstance(c, dict))
        done = [f"{len(stage.get('cases', []))} cases; classes: {classes}"]
        if "pseudo_labeled" in stage:
            done.append(f"organs completed by stage 1's pseudo-labels: {', '.join(stage['pseudo_labeled']) or 'none'}"
                        f" (provenance: {stage.get('pseudo_labels', '?')})")
        if "abandoned_without_lesion" in stage:
            done.append(f"left out (lesion source without a lesion): "
                        f"{', '.join(stage['abandoned_without_lesion']) or 'none'}")
        rows.append((f"stage {stage.get('stage', '?')}: {stage.get('name', '?')}", "; ".join(done)))
    provenance = "".join(_provenance_table(Path(stage["pseudo_labels"])) for stage in stages
                         if isinstance(stage.get("pseudo_labels"), str))
    return "\n<h3>Stages (progressive.json)</h3>\n" + key_table("run-stages", rows) + provenance


def _provenance_table(folder: Path) -> str:
    """One row per pseudo-labeled case (FOLDER/<case>.json, written beside its NIfTI): its source, the classes its
    own labels annotate, those the earlier stage's pseudo-label completed, and the teacher's mean confidence."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        own = [c for c in record.get("annotated_classes") or record.get("classes_from_annotation", [])
               if c != "background"]
        decided = {*record.get("classes_from_pseudo_label", []), *record.get("classes_from_fallback", [])}
        completed = sorted(c for c in decided if c != "background" and c not in own)
        rows.append((str(record.get("case_id", path.stem)), str(record.get("source", "?")),
                     ", ".join(own) or "none", ", ".join(completed) or "none",
                     num(record.get("mean_confidence"))))
    if not rows:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("case", "source", "annotated by its labels",
                                              "completed by the pseudo-label", "mean confidence (0-1)"))
    body = "\n".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return (f"\n<h4>Pseudo-label provenance per case ({escape(str(folder))})</h4>\n"
            f'<table id="run-pseudo-provenance">\n<tr>{head}</tr>\n{body}</table>')


def _plan_rows(plan: Plan) -> list[tuple[str, str]]:
    """The plan's settings a reader of the run wants: grid, patch, batch, crop, classes and normalisation."""
    rows = [("preset", plan.preset), ("target spacing (mm)", plan.target_spacing_mm),
            ("patch (voxels)", plan.patch_size), ("batch size", plan.batch_size), ("crop to body", plan.crop_to_body)]
    shown = [(label, plain_text(value)) for label, value in rows if value is not None]
    shown.append(("classes", ", ".join(c.name for c in plan.classes)))
    shown.append(("normalisation", ", ".join(f"{m}: {v.scheme}" for m, v in plan.normalisation.items())))
    return shown


def _config_value(key: str, value: Any, plan: Plan | None) -> str:
    """A config.json value as a reader understands it (0 means 'the plan's' for the batch, 'never' for validation)."""
    if key == "batch_size" and value == 0:
        return f"{plain_text('?' if plan is None else plan.batch_size)} (the plan's)"
    if key == "validate_every":
        return "never" if not value else f"{value} iterations"
    if key == "strategy_options" and not value:
        return "defaults"
    return plain_text(value)


# ----------------------------------------------------------------------------------------------- data


# ----------------------------------------------------------------------------------------------- training


def _training_section(run: RunFolder, figures: Path) -> str:
    if run.train is not None:
        return _train_run_curves(run, run.train, figures)
    if not run.logs:
        where = run.root / "runs" / "<method>" / "log.csv"
        return note(f"Not shown: no training log was found ({escape(str(where))}, as `unimos train` writes it). "
                     + ("This folder holds an evaluation only; make the report of the run folder to see training."
                        if run.layout == "evaluation" else ""))
    training_figure(run.logs, figures / "training.png")
    return figure_html("training.png", "Training loss at each logged iteration (left) and, where measured, the mean "
                   "Dice on the validation cases (right), per run. Each method's loss is its own objective: compare "
                   "curves of one method, not levels across methods.") + "\n" + _training_table(run)


def _train_run_curves(run: RunFolder, train: TrainRun, figures: Path) -> str:
    """The curves of a `unimos train` run folder: loss, learning rate, time per iteration, validation Dice."""
    if not run.logs:
        log = escape(str(train.folder / "log.csv"))
        every = train.config.get("log_every", "log_every")
        return note(f"Not shown: {log} holds no logged iteration yet (<code>unimos train</code> writes one row "
                     f"every {escape(str(every))} iterations and at the last one).")
    run_curves_figure(run.logs, figures / "training.png")
    return figure_html("training.png", "Training loss, learning rate and seconds per iteration (dashed: of which "
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
        rows.append(f"<tr><td>{escape(log.label)}</td><td>{log.steps[-1]}</td><td>{num(log.loss[-1], 4)}</td>"
                    f"<td>{val}</td><td>{num(float(np.median(seconds)) if seconds else math.nan, 3)}</td>"
                    f"<td>{num(float(np.median(data)) if data else math.nan, 3)}</td></tr>")
    return ("<table id=\"training-table\"><tr><th>run</th><th>iterations</th><th>last loss</th>"
            "<th>best validation Dice</th><th>s / iteration (median of logged)</th>"
            "<th>of which data (s)</th></tr>\n" + "\n".join(rows) + "</table>")


# ----------------------------------------------------------------------------------------------- results


# ----------------------------------------------------------------------------------------------- cases


# ----------------------------------------------------------------------------------------------- pieces


