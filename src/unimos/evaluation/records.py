"""What an evaluation produces, as data: one record per case and structure, the aggregates over groups of them, and the
result that summary.json is made from."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("dsc", "nsd", "hd95")


CSV_COLUMNS = ("case_id", "source", "modality", "structure", "dsc", "nsd", "hd95", "status")


@dataclass(frozen=True)
class StructureRecord:
    """One scored structure of one case: a row of scores.csv."""

    case_id: str
    source: str
    modality: str
    structure: str
    dsc: float
    nsd: float
    hd95: float
    status: str

    @property
    def scored(self) -> bool:
        """False for 'both_empty' rows, which no mean counts."""
        return self.status != "both_empty"


@dataclass(frozen=True)
class Aggregate:
    """Means and medians of the scored rows of one group (a structure, a case, a source)."""

    dsc: float
    nsd: float
    hd95: float
    median_dsc: float
    median_nsd: float
    median_hd95: float
    n: int
    n_hd95: int

    @classmethod
    def of(cls, records: Iterable[StructureRecord]) -> Aggregate:
        scored = [r for r in records if r.scored]
        columns = {m: np.array([getattr(r, m) for r in scored], dtype=np.float64) for m in METRICS}
        means = {m: nan_stat(np.mean, columns[m]) for m in METRICS}
        medians = {m: nan_stat(np.median, columns[m]) for m in METRICS}
        return cls(means["dsc"], means["nsd"], means["hd95"], medians["dsc"], medians["nsd"], medians["hd95"],
                   len(scored), int(np.count_nonzero(np.isfinite(columns["hd95"]))))

    def to_json(self) -> dict[str, Any]:
        return {"dsc": json_float(self.dsc), "nsd": json_float(self.nsd), "hd95": json_float(self.hd95),
                "n": self.n, "n_hd95": self.n_hd95,
                "median": {"dsc": json_float(self.median_dsc), "nsd": json_float(self.median_nsd),
                           "hd95": json_float(self.median_hd95)}}


@dataclass(frozen=True)
class EvaluationResult:
    """Everything `evaluate_predictions` computed and where it wrote it.

    Attributes:
        records: one row per case x annotated structure, in manifest and taxonomy order.
        per_structure: structure name -> aggregate over cases (structures with no scored case are left out).
        per_source: source name -> aggregate over its rows.
        per_source_structure: source name -> structure name -> aggregate.
        per_case: case id -> aggregate over its structures.
        mean: mean over structures of the per-structure means: {'dsc', 'nsd', 'hd95'}.
        split: the split scored (None = all labeled cases).
        tolerance_mm: NSD tolerance, mm.
        missing: case ids without a prediction (only when allowed).
        scores_csv, summary_json, summary_md: the files written.
    """

    records: tuple[StructureRecord, ...]
    per_structure: dict[str, Aggregate]
    per_source: dict[str, Aggregate]
    per_source_structure: dict[str, dict[str, Aggregate]]
    per_case: dict[str, Aggregate]
    mean: dict[str, float]
    split: str | None
    tolerance_mm: float
    missing: tuple[str, ...]
    scores_csv: Path
    summary_json: Path
    summary_md: Path
    case_sources: dict[str, str] = field(default_factory=dict)

    def per_modality(self) -> dict[str, dict[str, Aggregate]]:
        """Modality -> structure -> aggregate over that modality's cases (a CT+MR model is judged per modality)."""
        modalities = list(dict.fromkeys(r.modality for r in self.records))
        return {mod: {s: Aggregate.of(r for r in self.records if r.modality == mod and r.structure == s)
                      for s in self.per_structure
                      if any(r.modality == mod and r.structure == s and r.scored for r in self.records)}
                for mod in modalities}

    def modality_summary(self) -> dict[str, Any]:
        """Per modality: its cases, the mean over its structures of their per-structure means (as `mean` is for all
        cases), and its per-structure aggregates."""
        out = {}
        for modality, structures in self.per_modality().items():
            cases = {r.case_id for r in self.records if r.modality == modality}
            mean = {m: json_float(nan_stat(np.mean, np.array([getattr(a, m) for a in structures.values()],
                                                              dtype=np.float64))) for m in METRICS}
            out[modality] = {"cases": len(cases), "structures": len(structures), **mean,
                             "per_structure": {s: a.to_json() for s, a in structures.items()}}
        return out

    def summary(self) -> dict[str, Any]:
        """The content of summary.json (NaN as None)."""
        return {
            "split": self.split,
            "tolerance_mm": self.tolerance_mm,
            "n_cases": len(self.per_case),
            "missing": list(self.missing),
            "mean": {m: json_float(v) for m, v in self.mean.items()} | {"structures": len(self.per_structure)},
            "per_structure": {name: agg.to_json() for name, agg in self.per_structure.items()},
            "per_source": {name: agg.to_json() | {
                "cases": sum(1 for s in self.case_sources.values() if s == name),
                "per_structure": {s: a.to_json() for s, a in self.per_source_structure[name].items()}}
                for name, agg in self.per_source.items()},
            "per_modality": self.modality_summary(),
            "per_case": {case_id: {"source": self.case_sources.get(case_id)} | agg.to_json()
                         for case_id, agg in self.per_case.items()},
        }


def nan_stat(stat: Callable[[np.ndarray], Any], values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(stat(finite)) if finite.size else math.nan


def json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)
