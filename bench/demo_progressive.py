"""The progressive pipeline (paper 004: organ stage, organ + lesion stage, lesion stage on organ crops) beside a
finished demo's `partial` row, with the demo's recipe: one table of organs and lesions (DSC), `partial` and, where
the demo folder holds it, `partial+lesion_stage` beside it.

The demo folder needs its cache and OUT/evaluation/partial (a finished `unimos demo`, or its partial row); the
progressive run is kept under OUT/runs/progressive (stage_1, stage_2, stage_3) and scored with `unimos evaluate`'s
code as `unimos demo --progressive` scores it.

Example: .venv/bin/python bench/demo_progressive.py /work/demo_seed0 --name demo_progressive_seed0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import finished_demo, machine_line, merge_summary, write_demo_table  # noqa: E402

from unimos.pipelines.demo import (  # noqa: E402
    LESION_STAGE_ITERATIONS,
    LESION_STAGE_ROW,
    PROGRESSIVE_ROW,
    demo_iterations,
    demo_results_table,
    organs_and_lesions,
)
from unimos.pipelines.run import train_and_score  # noqa: E402
from unimos.training.config import TrainConfig  # noqa: E402


def main() -> None:
    args, meta, manifest, plan = finished_demo(__doc__.splitlines()[0], "demo_progressive")
    seed, quick = int(meta["seed"]), bool(meta["quick"])
    lesion_iterations = LESION_STAGE_ITERATIONS["quick" if quick else "default"]
    iterations = int(meta.get("iterations_per_method") or demo_iterations(quick))  # what the demo's rows had
    config = TrainConfig(method="partial", strategy="progressive", iterations=iterations, seed=seed,
                         device=args.device, precision=args.precision, checkpoint_every=0, deep_supervision=True,
                         strategy_options={"lesion_iterations": lesion_iterations})
    summary, seconds = train_and_score(PROGRESSIVE_ROW, args.demo / "cache", plan, manifest, config, args.demo)
    rows = {"partial": json.loads((args.demo / "evaluation" / "partial" / "summary.json").read_text())}
    staged = args.demo / "evaluation" / LESION_STAGE_ROW / "summary.json"
    if staged.is_file():
        rows[LESION_STAGE_ROW] = json.loads(staged.read_text())
    rows[PROGRESSIVE_ROW] = summary
    table = demo_results_table(rows, *organs_and_lesions(manifest))
    write_demo_table(args.name, [
        f"Machine: {machine_line()}", "",
        f"Demo {args.demo} (seed {seed}): the progressive pipeline (trained here in {seconds:.0f} s: "
        f"{config.iterations} + {config.iterations} iterations, then {lesion_iterations} per lesion group) "
        "beside the partial row. Held-out test CTs, DSC (0-1)."], table)
    merge_summary(args.name, {"demo": str(args.demo), "seed": seed, "machine": machine_line(),
                              "progressive_train_s": seconds,
                              "dsc": {row: {k: v["dsc"] for k, v in cols.items()} for row, cols in table.items()}})


if __name__ == "__main__":
    main()
