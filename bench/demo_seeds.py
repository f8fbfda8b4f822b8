"""Run `unimos demo` (or `unimos demo --ssl`) with several seeds; print each row's mean DSC / NSD, mean and spread.

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --out /tmp/demo-seeds [--progressive] [--precision float32]
    .venv/bin/python bench/demo_seeds.py --ssl --seeds 0 1 3 --out /tmp/ssl-seeds [--all] [--resume]

Writes OUT/seeds_summary.json and bench/results/demo_seeds.md (demo_seeds_float32.md with --precision float32, or
ssl_seeds.md with --ssl): the tables printed. Without --ssl: a second table gives every organ's and lesion's mean
DSC over the seeds, and the `demo` entry of bench/results/summary.json ({row: {class: DSC, "mean": organ mean,
"lesion_mean": lesion mean}}, with the recipe, machine and wall time per seed; `demo_float32` with --precision
float32).
With --ssl the rows are those of `unimos demo --ssl` (supervised, the development seeds' winner, the all_labeled
ceiling; --all: every strategy), and the `ssl_demo` entry of bench/results/summary.json gets each row's mean DSC
over the seeds. --resume reuses seeds whose folder already holds their results, made with the same rows,
iterations and budget (refused otherwise); delete the folder of a seed that stopped before its results.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from pathlib import Path

from _common import machine_line, merge_summary

from unimos.pipelines.demo import (
    DEMO_METHODS,
    PROGRESSIVE_ROW,
    SSL_ALL_ROWS,
    SSL_CEILING,
    SSL_DEFAULT_ROWS,
    run_demo,
    run_ssl_demo,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder; one sub-folder per seed")
    parser.add_argument("--ssl", action="store_true", help="compare the semi-supervised strategies")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--all", action="store_true", help="with --ssl: every strategy")
    parser.add_argument("--progressive", action="store_true", help="without --ssl: the progressive row too")
    parser.add_argument("--precision", default="auto", help="auto (default), float32 or bfloat16")
    parser.add_argument("--resume", action="store_true", help="reuse seeds already done in OUT")
    args = parser.parse_args(argv)
    if args.ssl:
        rows_of = SSL_ALL_ROWS if args.all else SSL_DEFAULT_ROWS
        runner = functools.partial(run_ssl_demo, strategies=rows_of, precision=args.precision)
    else:
        rows_of = (*DEMO_METHODS, PROGRESSIVE_ROW) if args.progressive else DEMO_METHODS
        runner = functools.partial(run_demo, progressive=args.progressive, precision=args.precision)
    baseline, meta_name = ("supervised", "ssl_meta.json") if args.ssl else ("naive", "demo_meta.json")
    results_name = "ssl_results.json" if args.ssl else "demo_results.json"
    per_seed: dict[int, dict] = {}
    for seed in args.seeds:
        folder = args.out / f"seed_{seed}"
        if args.resume and (folder / results_name).is_file():
            per_seed[seed] = json.loads((folder / results_name).read_text())
            meta = json.loads((folder / meta_name).read_text())
            made = (meta.get("quick"), meta.get("iterations_per_strategy", meta.get("iterations_per_method")))
            other_precision = args.precision != "auto" and meta.get("precision") != args.precision
            if not set(rows_of) <= set(per_seed[seed]) or (args.iterations is not None and made[1] != args.iterations) \
                    or made[0] != args.quick or other_precision:
                print(f"error: {folder}: made with rows {sorted(per_seed[seed])}, quick={made[0]}, {made[1]} "
                      f"iterations, precision {meta.get('precision')}, not what this run asks. Fix: give another "
                      "--out, or the same options",
                      file=sys.stderr)
                return 2
        else:
            per_seed[seed] = runner(folder, quick=args.quick, seed=seed, iterations=args.iterations).results
        print(f"seed {seed}: " + ", ".join(f"{m} {per_seed[seed][m]['mean']['dsc']:.3f}" for m in rows_of),
              flush=True)
    rows = []
    summary: dict[str, dict] = {}
    for method in rows_of:
        entry = {}
        for metric in ("dsc", "nsd"):
            values = [per_seed[s][method]["mean"][metric] for s in args.seeds]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            entry[metric] = {"mean": statistics.mean(values), "sd": spread, "values": values}
        seconds = [per_seed[s][method].get("seconds_per_iteration") for s in args.seeds]
        timing = f" {statistics.mean(seconds):.2f} |" if None not in seconds else ""
        summary[method] = entry
        rows.append(f"| {method} | {entry['dsc']['mean']:.3f} ± {entry['dsc']['sd']:.3f} | "
                    f"{entry['nsd']['mean']:.3f} ± {entry['nsd']['sd']:.3f} |{timing}")
    gains = {m: statistics.mean(per_seed[s][m]["mean"]["dsc"] - per_seed[s][baseline]["mean"]["dsc"]
                                for s in args.seeds) for m in rows_of if m != baseline}
    meta = json.loads((args.out / f"seed_{args.seeds[0]}" / meta_name).read_text())
    budget = meta.get("iterations_per_strategy", meta.get("iterations_per_method"))
    header = (f"{'SSL demo' if args.ssl else 'Demo'}, seeds {args.seeds}, "
              f"{'quick' if args.quick else 'default'} budget "
              f"({budget} iterations per row, patch {meta['patch_size']}, batch {meta['batch_size']}, precision "
              f"{meta.get('precision', '?')}), {machine_line()}")
    ceiling_note = ""
    if args.ssl and SSL_CEILING in gains and gains[SSL_CEILING] > 0:
        best = max((m for m in gains if m != SSL_CEILING), key=gains.get, default=None)
        if best is not None:
            ceiling_note = (f"; best strategy {best} reaches {gains[best] / gains[SSL_CEILING]:.0%} of the "
                            f"{SSL_CEILING} gain")
    extra = " s / iteration |" if args.ssl else ""
    table = "\n".join([header, "", f"| row | mean DSC (mean ± sd over seeds) | mean NSD 2 mm |{extra}",
                       "|---|---|---|" + ("---|" if args.ssl else ""), *rows, "",
                       f"mean DSC minus {baseline}, averaged over seeds: "
                       + ", ".join(f"{m} {g:+.3f}" for m, g in gains.items()) + ceiling_note])
    print(table)
    (args.out / "seeds_summary.json").write_text(json.dumps({"seeds": args.seeds, "summary": summary,
                                                               f"minus_{baseline}": gains}, indent=2))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    if args.ssl:
        (results / "ssl_seeds.md").write_text(table + "\n")
        if not args.quick:
            merge_summary("ssl_demo", {m: summary[m]["dsc"]["mean"] for m in rows_of})  # seeds: ssl_seeds.md
        return 0
    per_class, goals = class_table(per_seed, args.seeds, rows_of)
    print(per_class + "\n\n" + goals)
    suffix = "" if args.precision == "auto" else f"_{args.precision}"
    (results / f"demo_seeds{suffix}.md").write_text(table + "\n\n" + per_class + "\n\n" + goals + "\n")
    if not args.quick:
        metas = {s: json.loads((args.out / f"seed_{s}" / meta_name).read_text()) for s in args.seeds}
        entry = {m: {name: statistics.mean(per_seed[s][m][name]["dsc"] for s in args.seeds)
                     for name in per_seed[args.seeds[0]][m]} for m in rows_of}
        merge_summary(f"demo{suffix}", {**entry, "seeds": args.seeds, "recipe": meta.get("recipe"),
                                        "precision": meta.get("precision"), "machine": machine_line(),
                                        "wall_seconds": {str(s): round(metas[s]["seconds"]["total_s"], 1)
                                                         for s in args.seeds},
                                        "wall_seconds_without_progressive": {
                                            str(s): round(metas[s]["seconds"]["total_s"]
                                                          - metas[s]["seconds"].get("train_progressive_s", 0.0), 1)
                                            for s in args.seeds},
                                        "train_seconds": {str(s): {k: round(v, 1) for k, v in
                                                                   metas[s]["seconds"].items() if k != "total_s"}
                                                          for s in args.seeds}})
    return 0


def class_table(per_seed: dict[int, dict], seeds: list[int], rows_of: tuple[str, ...]) -> tuple[str, str]:
    """Every class's DSC (mean over the seeds) per row, organs then lesions, and the demo's goals as measured."""
    names = list(per_seed[seeds[0]][rows_of[0]])
    mean = {(m, n): statistics.mean(per_seed[s][m][n]["dsc"] for s in seeds) for m in rows_of for n in names}
    lines = ["| class (DSC, mean over seeds) | " + " | ".join(rows_of) + " |", "|---|" + "---|" * len(rows_of)]
    for name in names:
        shown = {"mean": "**mean (organs)**", "lesion_mean": "**mean (lesions)**"}.get(name, name)
        lines.append(f"| {shown} | " + " | ".join(f"{mean[(m, name)]:.3f}" for m in rows_of) + " |")
    goals = []
    if {"partial", "naive", "upper_bound"} <= set(rows_of):
        goals.append(f"partial - naive (organs): {mean[('partial', 'mean')] - mean[('naive', 'mean')]:+.3f} "
                     "(goal >= +0.10)")
        goals.append(f"upper_bound - partial (organs): "
                     f"{mean[('upper_bound', 'mean')] - mean[('partial', 'mean')]:+.3f} (goal <= 0.03)")
    if PROGRESSIVE_ROW in rows_of and "lesion_mean" in names:
        goals.append(f"progressive - partial (lesions): "
                     f"{mean[(PROGRESSIVE_ROW, 'lesion_mean')] - mean[('partial', 'lesion_mean')]:+.3f} "
                     "(goal >= 0)")
    return "\n".join(lines), "; ".join(goals)


if __name__ == "__main__":
    sys.exit(main())
