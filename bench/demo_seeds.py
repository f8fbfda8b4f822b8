"""Run `unimos demo` (or `unimos demo --ssl`) with several seeds; print each row's mean DSC / NSD, mean and spread.

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --out /tmp/demo-seeds [--quick] [--iterations N]
    .venv/bin/python bench/demo_seeds.py --ssl --seeds 0 1 3 --out /tmp/ssl-seeds [--all] [--resume]

Writes OUT/seeds_summary.json and bench/results/demo_seeds.md (or ssl_seeds.md with --ssl): the table printed.
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

from unimos.pipelines.demo import DEMO_METHODS, SSL_ALL_ROWS, SSL_CEILING, SSL_DEFAULT_ROWS, run_demo, run_ssl_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder; one sub-folder per seed")
    parser.add_argument("--ssl", action="store_true", help="compare the semi-supervised strategies")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--all", action="store_true", help="with --ssl: every strategy")
    parser.add_argument("--resume", action="store_true", help="reuse seeds already done in OUT")
    args = parser.parse_args(argv)
    if args.ssl:
        rows_of = SSL_ALL_ROWS if args.all else SSL_DEFAULT_ROWS
        runner = functools.partial(run_ssl_demo, strategies=rows_of)
    else:
        rows_of, runner = DEMO_METHODS, run_demo
    baseline, meta_name = ("supervised", "ssl_meta.json") if args.ssl else ("naive", "demo_meta.json")
    results_name = "ssl_results.json" if args.ssl else "demo_results.json"
    per_seed: dict[int, dict] = {}
    for seed in args.seeds:
        folder = args.out / f"seed_{seed}"
        if args.resume and (folder / results_name).is_file():
            per_seed[seed] = json.loads((folder / results_name).read_text())
            meta = json.loads((folder / meta_name).read_text())
            made = (meta.get("quick"), meta.get("iterations_per_strategy", meta.get("iterations_per_method")))
            if not set(rows_of) <= set(per_seed[seed]) or (args.iterations is not None and made[1] != args.iterations) \
                    or made[0] != args.quick:
                print(f"error: {folder}: made with rows {sorted(per_seed[seed])}, quick={made[0]}, {made[1]} "
                      f"iterations, not what this run asks. Fix: give another --out, or the same options",
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
    (results / ("ssl_seeds.md" if args.ssl else "demo_seeds.md")).write_text(table + "\n")
    if args.ssl and not args.quick:
        merge_summary("ssl_demo", {m: summary[m]["dsc"]["mean"] for m in rows_of})  # seeds: ssl_seeds.md
    return 0


if __name__ == "__main__":
    sys.exit(main())
