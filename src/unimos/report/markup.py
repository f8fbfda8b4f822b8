"""Small HTML pieces every section of the report uses: figures, notes, colour swatches, numbers and key tables."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from unimos.report.run_folder import RunFolder
from unimos.report.training_logs import as_float

FIGURE_FOLDER = "figures"


BEST_CLASS = ' class="best"'


def plain_text(value: Any) -> str:
    """Lists as 'a × b × c' (numbers) or 'a, b'; dicts as 'k=v'; booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return (" × " if numbers and value else ", ").join(f"{v:g}" if numbers else plain_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return "–" if value is None else str(value)


def key_table(table_id: str, rows: Sequence[tuple[str, str]]) -> str:
    body = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="{table_id}">\n{body}</table>'


def figure_html(name: str, caption: str) -> str:
    """A figure by its relative path (figures/NAME), captioned; `caption` is HTML already escaped."""
    return (f'<figure><img src="{FIGURE_FOLDER}/{escape(name)}" alt="{escape(Path(name).stem)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def note(html: str) -> str:
    """A note paragraph (`html` already escaped)."""
    return f'<p class="note">{html}</p>'


def swatch(color: str) -> str:
    """A small square of `color`, as in the figures' legends."""
    return f'<span class="swatch" style="background:{color}"></span>'


def best_index(values: Sequence[float]) -> int | None:
    """Index of the highest finite value, to mark it in a table; None with one value or none finite."""
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    return max(finite)[1] if len(values) > 1 and finite else None


def num(value: Any, digits: int = 3) -> str:
    """A number for a table cell; a dash where there is none."""
    value = as_float(value)
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def safe_name(name: str) -> str:
    """`name` as a file name: letters, digits, `_.-` only, at most 80 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]


def nsd_tolerance(run: RunFolder) -> float:
    if not run.methods:
        return math.nan
    value = run.methods[0].summary.get("tolerance_mm")
    return float(value) if isinstance(value, (int, float)) else math.nan
