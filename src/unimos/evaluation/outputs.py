"""What an evaluation writes: scores.csv (one row per case and structure), summary.json and summary.md (means, medians,
per-source tables), each atomically."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable

from unimos.evaluation.records import CSV_COLUMNS, EvaluationResult
from unimos.utils.atomic import atomic_path, write_json_atomic, write_text_atomic


def write_outputs(result: EvaluationResult) -> None:
    with atomic_path(result.scores_csv) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for r in result.records:
                writer.writerow([r.case_id, r.source, r.modality, r.structure,
                                 _csv_float(r.dsc), _csv_float(r.nsd), _csv_float(r.hd95), r.status])
    write_json_atomic(result.summary_json, result.summary())
    write_text_atomic(result.summary_md, _markdown(result))


def _markdown(result: EvaluationResult) -> str:
    tol = f"{result.tolerance_mm:g}"
    split = result.split if result.split is not None else "all labeled cases"
    out = io.StringIO()
    out.write(f"# Evaluation: {split}\n\n{len(result.per_case)} case(s); NSD at {tol} mm; mean (median) over "
              "the cases that annotate each structure; HD95 over cases where both masks are non-empty.\n\n")
    out.write(f"| structure | n | DSC | NSD@{tol}mm | HD95 (mm) |\n|---|---:|---:|---:|---:|\n")
    for name, agg in result.per_structure.items():
        out.write(f"| {name} | {agg.n} | {_pair(agg.dsc, agg.median_dsc)} | {_pair(agg.nsd, agg.median_nsd)} | "
                  f"{_pair(agg.hd95, agg.median_hd95, 2)} |\n")
    mean = result.mean
    out.write(f"| **mean over structures** | {len(result.per_structure)} | {_num(mean['dsc'])} | "
              f"{_num(mean['nsd'])} | {_num(mean['hd95'], 2)} |\n")
    if result.per_source:
        out.write(f"\n## Per source\n\n| source | cases | n | DSC | NSD@{tol}mm | HD95 (mm) |\n"
                  "|---|---:|---:|---:|---:|---:|\n")
        for name, agg in result.per_source.items():
            cases = sum(1 for s in result.case_sources.values() if s == name)
            out.write(f"| {name} | {cases} | {agg.n} | {_pair(agg.dsc, agg.median_dsc)} | "
                      f"{_pair(agg.nsd, agg.median_nsd)} | {_pair(agg.hd95, agg.median_hd95, 2)} |\n")
    by_modality = result.modality_summary()
    if len(by_modality) > 1:
        out.write("\n## Per modality\n\nEach modality's mean is over its own structures (mean over its cases).\n\n"
                  "| structure | " + " | ".join(f"{m} DSC | {m} NSD@{tol}mm" for m in by_modality) + " |\n"
                  "|---|" + "---:|---:|" * len(by_modality) + "\n")
        for name in result.per_structure:
            cells = []
            for entry in by_modality.values():
                agg = entry["per_structure"].get(name, {})
                cells += [_num(agg.get("dsc")), _num(agg.get("nsd"))]
            out.write(f"| {name} | " + " | ".join(cells) + " |\n")
        out.write("| **mean over structures** | " + " | ".join(
            f"{_num(e['dsc'])} | {_num(e['nsd'])}" for e in by_modality.values()) + " |\n")
        out.write("| cases | " + " | ".join(f"{e['cases']} | " for e in by_modality.values()) + " |\n")
    if result.missing:
        out.write(f"\nNot scored (no prediction): {', '.join(result.missing)}\n")
    return out.getvalue()


def _num(value: float | None, digits: int = 3) -> str:
    """A score with `digits` decimals; "–" for a missing one (None in summary.json, NaN in an aggregate)."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pair(mean: float, median: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(mean) else f"{_num(mean, digits)} ({_num(median, digits)})"


def mm_text(values: Iterable[float]) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def _csv_float(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.6g}"
