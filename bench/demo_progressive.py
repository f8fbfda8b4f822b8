"""The progressive pipeline (paper 004: organ stage, organ + lesion stage, lesion stage on organ crops) beside a
finished demo's `partial` row, with the demo's recipe: one table of organs and lesions (DSC), `partial` and, where
the demo folder holds it, `partial+lesion_stage` beside it.

The demo folder needs its cache and OUT/evaluation/partial (a finished `unimos demo`, or its partial row); the
progressive run is kept under OUT/runs/progressive (stage_1, stage_2, stage_3) and scored with `unimos evaluate`'s
code as `unimos demo --progressive` scores it.

Example: .venv/bin/python bench/demo_progressive.py /work/demo_seed0 --tag focal --name demo_progressive_seed0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import finished_demo, machine_line, merge_summary, scored_rows, write_demo_table  # noqa: E402

from unimos.pipelines.demo import (  # noqa: E402
    LESION_STAGE_ROW,
    PROGRESSIVE_ROW,
    demo_iterations,
    demo_results_table,
    demo_row_config,
    organs_and_lesions,
)
from unimos.pipelines.run import resolved_precision_name, train_and_score  # noqa: E402


def _tag_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", default="", help=(
        "train the row as progressive_TAG and compare it with partial_TAG (rows of bench/demo_rows.py's --tag) "
        "where the demo holds them: an earlier recipe's progressive row stays where it is"))


def main() -> None:
    args, meta, manifest, plan = finished_demo(__doc__.splitlines()[0], "demo_progressive", _tag_argument)
    seed, quick = int(meta["seed"]), bool(meta["quick"])
    iterations = int(meta.get("iterations_per_method") or demo_iterations(quick))  # what the demo's rows had
    config = demo_row_config(PROGRESSIVE_ROW, iterations, seed, quick, args.device, args.precision)
    lesion_iterations = config.strategy_options["lesion_iterations"]
    suffix = f"_{args.tag}" if args.tag else ""
    row = PROGRESSIVE_ROW + suffix
    summary, seconds = train_and_score(row, args.demo / "cache", plan, manifest, config, args.demo)
    rows = scored_rows(args.demo, dict.fromkeys(("partial", "partial" + suffix, LESION_STAGE_ROW,
                                                 LESION_STAGE_ROW + suffix)))
    rows[row] = summary
    table = demo_results_table(rows, *organs_and_lesions(manifest))
    write_demo_table(args.name, [
        f"Machine: {machine_line()}; ran in {resolved_precision_name(args.precision, args.device)}", "",
        f"Demo {args.demo} (seed {seed}): the progressive pipeline `{row}` (loss {config.method}; trained here in "
        f"{seconds:.0f} s: {config.iterations} + {config.iterations} iterations, then {lesion_iterations} per lesion "
        "group) beside the demo's partial rows. Held-out test CTs, DSC (0-1)."], table)
    merge_summary(args.name, {"demo": str(args.demo), "seed": seed, "machine": machine_line(), "row": row,
                              "loss": config.method, "progressive_train_s": seconds,
                              "dsc": {r: {k: v["dsc"] for k, v in cols.items()} for r, cols in table.items()}})


if __name__ == "__main__":
    main()
