"""Run `unimos demo` (or `unimos demo --ssl`) with several seeds; print each row's mean DSC / NSD, mean and spread.

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --out /tmp/demo-seeds [--quick] [--iterations N]
    .venv/bin/python bench/demo_seeds.py --ssl --seeds 0 1 --out /tmp/ssl-seeds

Writes OUT/seeds_summary.json and bench/results/demo_seeds.md (or ssl_seeds.md with --ssl): the table printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path

from unimos.workflow import DEMO_METHODS, SSL_STRATEGIES, run_demo, run_ssl_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder; one sub-folder per seed")
    parser.add_argument("--ssl", action="store_true", help="compare the semi-supervised strategies")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args(argv)
    rows_of, runner = (SSL_STRATEGIES, run_ssl_demo) if args.ssl else (DEMO_METHODS, run_demo)
    baseline, meta_name = ("supervised", "ssl_meta.json") if args.ssl else ("naive", "demo_meta.json")
    per_seed: dict[int, dict] = {}
    for seed in args.seeds:
        result = runner(args.out / f"seed_{seed}", quick=args.quick, seed=seed, iterations=args.iterations)
        per_seed[seed] = result.results
        print(f"seed {seed}: " + ", ".join(f"{m} {result.results[m]['mean']['dsc']:.3f}" for m in rows_of), flush=True)
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
    header = (f"{'SSL demo' if args.ssl else 'Demo'}, seeds {args.seeds}, {'quick' if args.quick else 'default'} budget "
              f"({budget} iterations per row, patch {meta['patch_size']}, batch {meta['batch_size']}), "
              f"{datetime.date.today()}, {platform.machine()} CPU")
    extra = " s / iteration |" if args.ssl else ""
    table = "\n".join([header, "", f"| row | mean DSC (mean ± sd over seeds) | mean NSD 2 mm |{extra}",
                       "|---|---|---|" + ("---|" if args.ssl else ""), *rows, "",
                       f"mean DSC minus {baseline}, averaged over seeds: "
                       + ", ".join(f"{m} {g:+.3f}" for m, g in gains.items())])
    print(table)
    (args.out / "seeds_summary.json").write_text(json.dumps({"seeds": args.seeds, "summary": summary,
                                                               f"minus_{baseline}": gains}, indent=2))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / ("ssl_seeds.md" if args.ssl else "demo_seeds.md")).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
