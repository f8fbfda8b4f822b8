"""The ACDC semi-supervised rows over several seeds: reads the `--out` folders of `bench/acdc.py` runs that differ
only by `--seed` and puts each row's mean Dice side by side, per seed and as the mean over seeds.

    .venv/bin/python bench/acdc.py --out /tmp/acdc_s0 --experiments ssl --labeled 3 --seed 0
    .venv/bin/python bench/acdc.py --out /tmp/acdc_s1 --experiments ssl --labeled 3 --seed 1
    .venv/bin/python bench/acdc_seeds.py /tmp/acdc_s0 /tmp/acdc_s1

Rows are compared only when every folder ran them with the same schedule and iterations (checked); a row that a
folder lacks is shown as '-' for that seed and its mean is over the seeds that have it. Writes
bench/results/acdc_seeds.md and the `acdc_ssl_seeds` entry of bench/results/summary.json:
{labeled count: {row: {"seeds": {seed: mean Dice}, "mean": mean over seeds}}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS, machine_line, merge_summary

from unimos.utils.atomic import write_text_atomic


def read_runs(outs: list[Path]) -> dict[int, dict[str, Any]]:
    """Seed -> that folder's ssl rows (acdc_results.json), the seed taken from its acdc_meta.json."""
    runs: dict[int, dict[str, Any]] = {}
    for out in outs:
        meta, results = (json.loads((out / name).read_text()) for name in ("acdc_meta.json", "acdc_results.json"))
        seed = int(meta["seed"])
        if seed in runs:
            raise SystemExit(f"error: {out}: seed {seed} is also in another folder. Fix: give one folder per seed")
        runs[seed] = {row: value for row, value in results.items() if value.get("experiment") == "ssl"}
    return runs


def seed_table(runs: dict[int, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{labeled count: {strategy: {"seeds": {seed: dsc}, "mean": dsc}}}, refusing rows trained differently."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    schedules: dict[str, tuple[Any, Any]] = {}
    for seed, rows in sorted(runs.items()):
        for row, value in rows.items():
            made = (value["iterations"], value["schedule"])
            if schedules.setdefault(row, made) != made:
                raise SystemExit(f"error: row {row} was trained with {made} (iterations, schedule) for seed {seed} but "
                                 f"{schedules[row]} for another seed. Fix: rerun it with the same --budget")
            count, strategy = row[3:].split("_", 1)
            entry = table.setdefault(count, {}).setdefault(strategy, {"seeds": {}})
            entry["seeds"][str(seed)] = value["table"]["mean"]["dsc"]
    for rows in table.values():
        for entry in rows.values():
            entry["mean"] = statistics.fmean(entry["seeds"].values())
    return table


def markdown(table: dict[str, dict[str, dict[str, Any]]], seeds: list[int]) -> str:
    """One table per labeled count: mean Dice (RV, MYO, LV) per seed, the mean, and the gain over supervised."""
    lines = [f"# ACDC semi-supervised rows over seeds\n\n{machine_line()}\n"]
    for count, rows in sorted(table.items(), key=lambda item: int(item[0])):
        base = rows.get("supervised")
        lines += [f"\n## {count} labeled patients (mean Dice over RV, MYO, LV on the 10 validation patients)\n",
                  "| row | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | minus supervised (same seeds) |",
                  "|---|" + "---|" * (len(seeds) + 2)]
        for strategy, entry in rows.items():
            cells = [f"{entry['seeds'][str(s)]:.3f}" if str(s) in entry["seeds"] else "-" for s in seeds]
            shared = [s for s in entry["seeds"] if base is not None and s in base["seeds"]]
            gain = (statistics.fmean(entry["seeds"][s] - base["seeds"][s] for s in shared)
                    if shared and strategy != "supervised" else None)
            gain_text = f"{gain:+.3f} ({len(shared)} seed{'s' if len(shared) > 1 else ''})" if gain is not None else ""
            lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {entry['mean']:.3f} | {gain_text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outs", type=Path, nargs="+", help="--out folders of bench/acdc.py runs, one per seed")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs = read_runs(args.outs)
    table = seed_table(runs)
    text = markdown(table, sorted(runs))
    print(text)
    write_text_atomic(args.results / "acdc_seeds.md", text)
    merge_summary("acdc_ssl_seeds", table, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
