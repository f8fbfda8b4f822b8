"""The report's Results section (per-organ, per-source and per-modality tables, DSC distributions) and its Cases
section (the evaluated cases worst first, each with its scores and a montage)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from unimos.data.colors import color_table, rgb_hex
from unimos.data.manifest import Case
from unimos.errors import UnimosError
from unimos.evaluation.records import StructureRecord
from unimos.report.case_views import ORIENTATION_NOTE, CaseFigure, render_case
from unimos.report.figures import dsc_distribution_figure
from unimos.report.markup import (
    BEST_CLASS,
    best_index,
    figure_html,
    note,
    nsd_tolerance,
    num,
    safe_name,
    swatch,
)
from unimos.report.run_folder import MethodResult, RunFolder, finite_mean
from unimos.report.training_logs import as_float


def results_section(run: RunFolder, figures: Path) -> str:
    if not run.methods:
        return note("Missing: no evaluation in this folder yet (evaluation/&lt;method&gt;/scores.csv and "
                     "summary.json).")
    structures = run.structures
    tolerance = nsd_tolerance(run)
    parts = [(f"<p>Scores on what each reference annotates (unannotated organs of partial references are not "
              f"scored). DSC and NSD at {tolerance:g} mm: mean over the cases that annotate the organ; HD95 in mm "
              "over the cases where both masks are non-empty. The best DSC per organ is in bold.</p>")]
    for method in run.methods:
        missing = method.summary.get("missing") or []
        if missing:
            parts.append(note(f"{escape(method.name)}: no prediction for {escape(', '.join(missing))} "
                               "(not scored)."))
    parts.append("<h3>Per organ</h3>\n" + _per_organ_table(run.methods, structures, tolerance))
    for modality in _modalities(run.methods):  # a CT+MR model is judged on each modality's own cases
        views = [_modality_view(m.summary, modality) for m in run.methods]
        parts.append(f"<h3>Per organ, {escape(modality)} cases</h3>\n"
                     + _per_organ_table(run.methods, structures, tolerance, views, f"per-organ-{safe_name(modality)}",
                                        skip_unscored=True))
    if structures and any(m.scores for m in run.methods):
        dsc_distribution_figure(run.methods, structures, figures / "dsc_per_case.png")
        parts.append(figure_html("dsc_per_case.png", "DSC per case, one panel per organ (in its colour), one box per "
                             "method: the box spans the quartiles, the line is the median, each point one case."))
    parts.append("<h3>Per source</h3>\n" + _group_table(
        run.methods, "source", lambda m: m.summary.get("per_source", {}).keys(),
        lambda m, key: _from_summary(m.summary.get("per_source", {}).get(key)), tolerance, "per-source"))
    parts.append("<h3>Per modality</h3>\n" + _group_table(
        run.methods, "modality", lambda m: dict.fromkeys(r.modality for r in m.scores).keys(),
        lambda m, key: _from_rows([r for r in m.scores if r.modality == key]), tolerance, "per-modality"))
    return "\n".join(parts)


def _modalities(methods: Sequence[MethodResult]) -> list[str]:
    """The modalities of the scored cases when there are several (none otherwise: the overall table says it all)."""
    found = list(dict.fromkeys(mod for m in methods for mod in (m.summary.get("per_modality") or {})))
    return found if len(found) > 1 else []


def _modality_view(summary: dict[str, Any], modality: str) -> dict[str, Any]:
    """A summary.json's per-modality entry in the shape of the whole summary (per_structure, mean)."""
    entry = (summary.get("per_modality") or {}).get(modality) or {}
    return {"per_structure": entry.get("per_structure") or {}, "mean": entry}


def _per_organ_table(methods: Sequence[MethodResult], structures: Sequence[str], tolerance: float,
                     summaries: Sequence[dict[str, Any]] | None = None, table_id: str = "per-organ",
                     skip_unscored: bool = False) -> str:
    """Organs x methods (n, DSC, NSD) from each method's summary.json, or from `summaries` (one per method);
    `skip_unscored` leaves out organs no method scored (an MR table of a CT+MR project)."""
    summaries = [m.summary for m in methods] if summaries is None else summaries
    colors = {name: rgb_hex(rgb) for name, rgb in color_table(structures).items()}
    head = ("<tr><th rowspan=\"2\">organ</th>" + "".join(f'<th colspan="3">{escape(m.name)}</th>' for m in methods)
            + "</tr>\n<tr>" + f"<th>n</th><th>DSC</th><th>NSD@{tolerance:g}mm</th>" * len(methods) + "</tr>")
    rows = []
    for structure in structures:
        entries = [summary.get("per_structure", {}).get(structure) or {} for summary in summaries]
        if skip_unscored and not any(entries):
            continue
        best = best_index([as_float(e.get("dsc")) for e in entries])
        cells = "".join(f"<td>{e.get('n', '–')}</td><td{BEST_CLASS if i == best else ''}>{num(e.get('dsc'))}</td>"
                        f"<td>{num(e.get('nsd'))}</td>" for i, e in enumerate(entries))
        rows.append(f"<tr><td>{swatch(colors[structure])}{escape(structure)}</td>{cells}</tr>")
    means = [summary.get("mean") or {} for summary in summaries]
    cells = "".join(f"<td>{e.get('structures', '–')}</td><td>{num(e.get('dsc'))}</td><td>{num(e.get('nsd'))}</td>"
                    for e in means)
    rows.append(f"<tr><td><b>mean over organs</b></td>{cells}</tr>")
    return f'<table id="{table_id}">{head}\n' + "\n".join(rows) + "</table>"


def _group_table(methods: Sequence[MethodResult], label: str, keys: Callable[[MethodResult], Iterable[str]],
                 stats: Callable[[MethodResult, str], dict[str, Any]], tolerance: float, table_id: str) -> str:
    """Methods side by side per group (a source, a modality): cases, DSC, NSD, HD95 from `stats(method, group)`."""
    groups = list(dict.fromkeys(k for m in methods for k in keys(m)))
    if not groups:
        return note(f"No {label} in the scores.")
    head = (f"<tr><th rowspan=\"2\">{label}</th>" + "".join(f'<th colspan="4">{escape(m.name)}</th>' for m in methods)
            + "</tr>\n<tr>" + f"<th>cases</th><th>DSC</th><th>NSD@{tolerance:g}mm</th><th>HD95 (mm)</th>"
            * len(methods) + "</tr>")
    rows = []
    for group in groups:
        cells = ""
        for method in methods:
            s = stats(method, group)
            cells += (f"<td>{s['cases']}</td><td>{num(s['dsc'])}</td><td>{num(s['nsd'])}</td>"
                      f"<td>{num(s['hd95'], 2)}</td>")
        rows.append(f"<tr><td>{escape(group)}</td>{cells}</tr>")
    return f'<table id="{table_id}">{head}\n' + "\n".join(rows) + "</table>"


def _from_summary(entry: dict[str, Any] | None) -> dict[str, Any]:
    entry = entry or {}
    return {"cases": entry.get("cases", "–"), "dsc": as_float(entry.get("dsc")), "nsd": as_float(entry.get("nsd")),
            "hd95": as_float(entry.get("hd95"))}


def _from_rows(rows: Sequence[StructureRecord]) -> dict[str, Any]:
    """Mean over the scored rows (case x structure), NaN left out: how `unimos evaluate` aggregates a source."""
    scored = [r for r in rows if r.scored]
    return {"cases": len({r.case_id for r in rows}) if rows else "–",
            "dsc": finite_mean(r.dsc for r in scored), "nsd": finite_mean(r.nsd for r in scored),
            "hd95": finite_mean(r.hd95 for r in scored)}


def cases_section(run: RunFolder, figures: Path, max_cases: int) -> str:
    if not run.methods:
        return note("Missing: case views need an evaluation (which cases were scored, and how well).")
    drawn_by = run.methods[0]
    order = _worst_first(run)
    shown = shown_cases(order, {r.case_id: r.modality for r in drawn_by.scores}, max_cases)
    parts = [(f"<p>The evaluated cases, worst first by the mean DSC of <b>{escape(drawn_by.name)}</b> over the "
              "organs each case annotates; the views show that method's prediction.</p>")]
    if len(order) > len(shown):
        parts.append(note(f"Showing the {len(shown)} worst of {len(order)} cases."))
    cases = {c.case_id: c for c in run.manifest.cases} if run.manifest is not None else {}
    if run.manifest is None:
        parts.append(note(f"No case views: {escape(run.manifest_note or '')}. They need the manifest (images and "
                           "references) and the predictions folder: write_report(..., manifest=PATH, "
                           "predictions=FOLDER). The scores per case are listed."))
    elif drawn_by.predictions_dir is None:
        parts.append(note(f"No predictions folder was found for {escape(drawn_by.name)}: the views show the "
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
              f"{num(drawn_by.case_mean_dsc(case_id))} ({escape(drawn_by.name)})</h3>\n"
              f'<p class="meta">{escape(about)}</p>'), _case_table(run.methods, case_id, case, structures, colors)]
    if case is not None and run.manifest is not None:
        name = f"case_{rank:02d}_{safe_name(case_id)}.png"
        dsc = {r.structure: r.dsc for r in drawn_by.scores if r.case_id == case_id}
        try:
            view = render_case(case, run.manifest.taxonomy, drawn_by.prediction_path(case_id), drawn_by.name,
                               figures / name, dsc)
        except UnimosError as err:
            parts.append(note(f"No view: {escape(str(err))}"))
        else:
            parts.append(figure_html(name, _case_caption(view)))
    elif run.manifest is not None:
        parts.append(note(f"{escape(case_id)} is not in the manifest {escape(str(run.manifest.path))}: no view."))
    parts.append("</article>")
    return "\n".join(parts)


def shown_cases(order: Sequence[str], modality_of: dict[str, str], max_cases: int) -> list[str]:
    """The first `max_cases` of `order` (worst first), with the worst case of every modality among them: a CT+MR
    report always draws an MR case, however well the MR cases scored. Kept in `order`'s order."""
    if max_cases <= 0:
        return []
    worst_of: dict[str, str] = {}
    for case_id in order:
        if case_id in modality_of:
            worst_of.setdefault(modality_of[case_id], case_id)
    chosen = set(list(worst_of.values())[:max_cases])
    for case_id in order:
        if len(chosen) >= max_cases:
            break
        chosen.add(case_id)
    return [c for c in order if c in chosen]


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
        label = f"{swatch(colors[structure])}{escape(structure)}"
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
    return num(row.dsc)


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
