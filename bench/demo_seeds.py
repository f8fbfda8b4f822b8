"""Run `unimos demo` with several seeds and print mean and spread of each method's mean DSC / NSD.

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --out /tmp/demo-seeds [--quick] [--iterations N]

Writes OUT/seeds_summary.json and bench/results/demo_seeds.md (the table printed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path

from unimos.workflow import DEMO_METHODS, run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder; one sub-folder per seed")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args(argv)
    per_seed: dict[int, dict] = {}
    for seed in args.seeds:
        result = run_demo(args.out / f"seed_{seed}", quick=args.quick, seed=seed, iterations=args.iterations)
        per_seed[seed] = result.results
        print(f"seed {seed}: " + ", ".join(f"{m} {result.results[m]['mean']['dsc']:.3f}" for m in DEMO_METHODS),
              flush=True)
    rows = []
    summary: dict[str, dict] = {}
    for method in DEMO_METHODS:
        entry = {}
        for metric in ("dsc", "nsd"):
            values = [per_seed[s][method]["mean"][metric] for s in args.seeds]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            entry[metric] = {"mean": statistics.mean(values), "sd": spread, "values": values}
        summary[method] = entry
        rows.append(f"| {method} | {entry['dsc']['mean']:.3f} ± {entry['dsc']['sd']:.3f} | "
                    f"{entry['nsd']['mean']:.3f} ± {entry['nsd']['sd']:.3f} |")
    gap = [per_seed[s]["partial"]["mean"]["dsc"] - per_seed[s]["naive"]["mean"]["dsc"] for s in args.seeds]
    meta = json.loads((args.out / f"seed_{args.seeds[0]}" / "demo_meta.json").read_text())
    header = (f"Demo, seeds {args.seeds}, {'quick' if args.quick else 'default'} budget "
              f"({meta['iterations_per_method']} iterations per method, patch {meta['patch_size']}, batch "
              f"{meta['batch_size']}), {datetime.date.today()}, {platform.machine()} CPU")
    table = "\n".join([header, "", "| method | mean DSC (mean ± sd over seeds) | mean NSD 2 mm |", "|---|---|---|", *rows,
                       "", f"partial - naive mean DSC per seed: {[round(g, 3) for g in gap]}"])
    print(table)
    (args.out / "seeds_summary.json").write_text(json.dumps({"seeds": args.seeds, "summary": summary,
                                                               "partial_minus_naive": gap}, indent=2))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "demo_seeds.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
