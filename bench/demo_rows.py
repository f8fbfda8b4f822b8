"""Retrain rows of a finished demo with the demo's current recipe (its loss per row included) beside the rows it
already has, and score them on the same held-out test CTs: one table (organs and lesions, DSC).

Each new row is trained on the demo's own cache (the upper bound on OUT/cache_complete, made if missing) with
`run_demo`'s settings and kept under OUT as `ROW_TAG` (runs/, predictions/, evaluation/), so an earlier recipe's
rows stay where they are for the comparison.

Example: .venv/bin/python bench/demo_rows.py /work/demo_seed0 --rows partial upper_bound --tag focal \\
    --name demo_focal_seed0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import finished_demo, machine_line, merge_summary, scored_rows, write_demo_table  # noqa: E402

from unimos.pipelines.demo import (  # noqa: E402
    DEMO_LOSSES,
    DEMO_METHODS,
    complete_label_cache,
    demo_iterations,
    demo_results_table,
    demo_row_config,
    organs_and_lesions,
)
from unimos.pipelines.run import resolved_precision_name, train_and_score  # noqa: E402


def _rows_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", nargs="+", choices=DEMO_METHODS, default=list(DEMO_METHODS))
    parser.add_argument("--tag", default="focal", help="suffix of the new rows' names (ROW_TAG)")


def main() -> None:
    args, meta, manifest, plan = finished_demo(__doc__.splitlines()[0], "demo_rows", _rows_arguments)
    seed, quick = int(meta["seed"]), bool(meta["quick"])
    summaries, seconds = {}, {}
    for row in args.rows:
        name = f"{row}_{args.tag}"
        cache = complete_label_cache(args.demo, plan) if row == "upper_bound" else args.demo / "cache"
        config = demo_row_config(row, demo_iterations(quick), seed, quick, args.device, args.precision)
        clock = time.perf_counter()
        summaries[name], seconds[name] = train_and_score(name, cache, plan, manifest, config, args.demo)
        print(f"{name}: trained in {seconds[name]:.0f} s, scored in {time.perf_counter() - clock:.0f} s in all",
              flush=True)
    earlier = scored_rows(args.demo, DEMO_METHODS)
    table = demo_results_table({**earlier, **summaries}, *organs_and_lesions(manifest))
    recipe = ", ".join(f"{r}_{args.tag}: {DEMO_LOSSES[r]}" for r in args.rows)
    write_demo_table(args.name, [
        f"Machine: {machine_line()}; ran in {resolved_precision_name(args.precision, args.device)}", "",
        f"Demo {args.demo} (seed {seed}, {demo_iterations(quick)} iterations per row): its earlier rows and the rows "
        f"retrained with the current recipe ({recipe}; training s: "
        f"{', '.join(f'{k} {v:.0f}' for k, v in seconds.items())}). Held-out test CTs, DSC (0-1)."], table)
    merge_summary(args.name, {"demo": str(args.demo), "seed": seed, "machine": machine_line(),
                              "losses": {f"{r}_{args.tag}": DEMO_LOSSES[r] for r in args.rows}, "train_s": seconds,
                              "dsc": {row: {k: v["dsc"] for k, v in cols.items()} for row, cols in table.items()}})


if __name__ == "__main__":
    main()
