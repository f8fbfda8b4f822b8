"""What the benchmark scripts share: the summary file every benchmark writes its entry into, and the run header."""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unimos.data.plan_spec import Plan
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
    """Date, CPU model and what `--precision auto` runs on it, for the first line of every table."""
    from unimos.utils.precision import cpu_bfloat16_unit

    unit = cpu_bfloat16_unit()
    auto = f"bfloat16 ({unit})" if unit else "float32 (no AMX, no AVX-512 BF16)"
    return (f"{datetime.date.today()}, {cpu_model()} ({platform.machine()}), {_cores()} cores, precision auto = "
            f"{auto}")


def run_logs(run_dir: Path) -> list[Path]:
    """A run's training logs: RUN/log.csv, or one per round of a self-training run (RUN/round_K/log.csv)."""
    run_dir = Path(run_dir)
    return [run_dir / "log.csv"] if (run_dir / "log.csv").is_file() else sorted(run_dir.glob("round_*/log.csv"))


def median_step_seconds(run_dir: Path) -> float | None:
    """Median seconds per training step over the logged rows of a run's logs (robust to a row that shared the cores
    or was paused for a while, unlike its wall time); None without a log."""
    import csv
    import statistics

    values = []
    for log in run_logs(run_dir):
        with log.open(newline="") as handle:
            values += [float(row["seconds"]) for row in csv.DictReader(handle) if row.get("seconds")]
    return statistics.median(values) if values else None


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it (unimos.utils.device.cpu_model)."""
    from unimos.utils.device import cpu_model as model

    return model()


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


METRICS = (("dsc", "DSC", "{:.3f}"), ("nsd", "NSD at 2 mm", "{:.3f}"), ("hd95", "HD95 (mm)", "{:.1f}"))


def organ_table(summary: dict[str, Any], organs: list[str], means: dict[str, list[str]]) -> dict[str, Any]:
    """{organ: {"dsc", "nsd", "hd95", "n"}, mean_name: {...}} from an evaluation summary.json.

    `n` is how many cases scored the organ (only those that annotate it); each mean is the plain mean over its
    organs of the per-organ means, leaving out organs no case scored."""
    per = summary["per_structure"]
    rows: dict[str, Any] = {o: {m: per[o][m] for m in ("dsc", "nsd", "hd95", "n")} for o in organs if o in per}
    for name, members in means.items():
        rows[name] = {}
        for metric, _title, _fmt in METRICS:
            values = [rows[o][metric] for o in members if o in rows and rows[o][metric] is not None]
            rows[name][metric] = float(sum(values) / len(values)) if values else None
    return rows


def organ_markdown(tables: dict[str, dict[str, Any]], organs: list[str], mean_titles: dict[str, str],
                   header: str, counts: bool = False) -> str:
    """One organ x row table per metric (DSC, NSD, HD95) under a header that states the budget."""
    rows = list(tables)
    lines = [header, ""]
    for metric, title, fmt in METRICS:
        extra = " cases |" if counts else ""
        lines += [f"**{title}**", "", f"| organ |{extra} " + " | ".join(rows) + " |",
                  "|---|" + ("---|" if counts else "") + "---|" * len(rows)]
        for organ in [*organs, *mean_titles]:
            cells = []
            for row in rows:
                value = tables[row].get(organ, {}).get(metric)
                cells.append("-" if value is None else fmt.format(value))
            n = next((tables[r][organ]["n"] for r in rows if "n" in tables[r].get(organ, {})), "")
            name = f"**{mean_titles[organ]}**" if organ in mean_titles else organ
            lines.append(f"| {name} |" + (f" {n} |" if counts else "") + " " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def add_row_arguments(parser: Any, data: Path, iterations: int) -> None:
    """The options every accuracy benchmark takes: data, output, budget, plan preset, device, seed, resume."""
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder (or an earlier one with --resume)")
    parser.add_argument("--budget", type=float, default=1.0, help=f"scales the iterations per row (1.0 = {iterations})")
    parser.add_argument("--preset", default="3mm-small", choices=["3mm", "3mm-small", "fine"])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="reuse rows already scored in OUT")
    parser.add_argument("--results", type=Path, default=RESULTS)


def earlier_results(path: Path, resume: bool) -> dict[str, Any]:
    """The rows an earlier run of a benchmark scored into `path`, when resuming; else none."""
    return json.loads(path.read_text()) if resume and path.exists() else {}


def pending_rows(order: Any, wanted: Any, results: dict[str, Any], path: Path) -> list[str]:
    """The wanted rows in benchmark order that `results` does not hold yet (the others are said to be reused)."""
    pending = []
    for row in [r for r in order if r in wanted]:
        if row in results:
            print(f"{row}: reused from {path}", flush=True)
        else:
            pending.append(row)
    return pending


def run_row(name: str, manifest: Any, plan: Plan, out: Path, config: Any, organs: list[str],
            means: dict[str, list[str]], score_split: str = "test", resume: bool = False) -> dict[str, Any]:
    """Preprocess the row's collection (cached per collection), train, predict the scored split, evaluate.

    Returns {"table": organ table, "train_s", "row_s", "strategy", "loss"}; checkpoints stay in OUT/runs/NAME."""
    import time

    from unimos.pipelines.run import train_and_score
    from unimos.preprocess.cache import preprocess_manifest

    clock = time.perf_counter()
    cache = out / "cache" / Path(manifest.path).stem
    preprocess_manifest(manifest, plan, cache)
    summary, train_s = train_and_score(name, cache, plan, manifest, config, out, score_split=score_split,
                                       resume=resume)
    return {"table": organ_table(summary, organs, means), "train_s": train_s, "row_s": time.perf_counter() - clock,
            "strategy": config.strategy, "loss": config.method}


def write_manifests(out: Path, collections: dict[str, list[dict[str, Any]]], project: dict[str, Any],
                    header: str) -> dict[str, Path]:
    """One plain manifest per collection, OUT/data/manifest_NAME.yaml, as a user would write it."""
    import yaml

    from unimos.utils.atomic import write_text_atomic

    class PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # a shared labels dict is written out in full, no &anchors
            return True

    paths = {}
    for name, sources in collections.items():
        text = header.format(name=name) + yaml.dump({"project": project, "sources": sources}, Dumper=PlainDumper,
                                                    sort_keys=False)
        paths[name] = write_text_atomic(out / "data" / f"manifest_{name}.yaml", text)
    return paths


def write_kept_label(source_label: Path, keep_values: Any, out: Path) -> Path:
    """Copy a label map keeping only `keep_values` (every other value becomes 0), same grid and header; the source
    file is only read (derived labels go to the benchmark's output, never into the data folder)."""
    import nibabel as nib
    import numpy as np

    from unimos.utils.atomic import atomic_path

    image = nib.load(str(source_label))
    array = np.asanyarray(image.dataobj)
    kept = np.where(np.isin(array, list(keep_values)), array, 0).astype(array.dtype)
    with atomic_path(out) as tmp:
        nib.save(nib.Nifti1Image(kept, image.affine, image.header), str(tmp))
    return out


def finished_demo(description: str, default_name: str,
                  extra: Callable[[Any], None] | None = None) -> tuple[Any, dict[str, Any], Any, Plan]:
    """The command line of a script that adds a row beside a finished `unimos demo` folder (DEMO --name --device
    --precision, and what `extra(parser)` adds): (arguments, the demo's demo_meta.json, its manifest, its plan)."""
    import argparse

    from unimos.data.manifest import load_manifest

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("demo", type=Path, help="a finished `unimos demo` folder (its partial row at least)")
    parser.add_argument("--name", default=default_name, help="key in bench/results/summary.json")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    meta = json.loads((args.demo / "demo_meta.json").read_text())
    manifest = load_manifest(args.demo / "data" / "manifest.yaml")
    plan = Plan.model_validate(json.loads((args.demo / "plan_3mm.json").read_text()))
    return args, meta, manifest, plan


def scored_rows(demo: Path, rows: Any) -> dict[str, Any]:
    """{row: DEMO/evaluation/ROW/summary.json} for the rows of `rows` that a demo folder has scored, in that order."""
    return {row: json.loads(path.read_text()) for row in rows
            if (path := Path(demo) / "evaluation" / row / "summary.json").is_file()}


def write_demo_table(name: str, header: list[str], table: dict[str, dict[str, Any]]) -> str:
    """Header lines + a class x row table of DSC (`demo_results_table`'s layout), printed and written as
    RESULTS/NAME.md; the text."""
    rows = list(table)
    lines = [*header, "", "| class | " + " | ".join(rows) + " |", "|---|" + "---:|" * len(rows)]
    for cls in table[rows[0]]:
        lines.append(f"| {cls} | " + " | ".join(f"{table[row][cls]['dsc']:.3f}" for row in rows) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    return text
