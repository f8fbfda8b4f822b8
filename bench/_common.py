"""What the benchmark scripts share: the summary file every benchmark writes its entry into, and the run header."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

from unimos.utils.atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def merge_summary(key: str, payload: Any, results: Path = RESULTS) -> Path:
    """Set one benchmark's entry of RESULTS/summary.json, keeping the other benchmarks' entries."""
    path = results / "summary.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current[key] = payload
    results.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, current)


def machine_line() -> str:
    """Date and machine, for the first line of every table."""
    return f"{datetime.date.today()}, {platform.machine()} CPU, {_cores()} cores"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
