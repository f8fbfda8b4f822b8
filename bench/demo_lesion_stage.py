"""The lesion stage beside a finished demo's `partial` row: train it on the demo's cache, score partial vs
partial + lesion stage on the held-out test CTs, one table (organs and lesions, DSC).

The organ model is the demo's own OUT/runs/partial checkpoint (not retrained), the lesion stage is what
`unimos demo --lesion-stage` adds (`add_lesion_stage_row`: 300 iterations per lesion group, the demo's seed and
precision); both are kept under OUT (runs/partial+lesion_stage) and scored with `unimos evaluate`'s code.

Example: .venv/bin/python bench/demo_lesion_stage.py /work/demo_seed0 --name demo_lesion_stage_seed0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, finished_demo, machine_line, merge_summary  # noqa: E402

from unimos.pipelines.demo import LESION_STAGE_ROW, add_lesion_stage_row, demo_results_table, organs_and_lesions  # noqa: E402,E501


def main() -> None:
    args, meta, manifest, plan = finished_demo(__doc__.splitlines()[0], "demo_lesion_stage")
    summary, seconds = add_lesion_stage_row(args.demo, args.demo / "cache", plan, manifest, int(meta["seed"]),
                                            bool(meta["quick"]), args.device, args.precision)
    partial = json.loads((args.demo / "evaluation" / "partial" / "summary.json").read_text())
    table = demo_results_table({"partial": partial, LESION_STAGE_ROW: summary}, *organs_and_lesions(manifest))
    lines = [f"Machine: {machine_line()}", "",
             f"Demo {args.demo} (seed {meta['seed']}): the `partial` organ model alone and with the lesion stage "
             f"(trained here in {seconds:.0f} s). Held-out test CTs, DSC (0-1).", "",
             f"| class | partial | {LESION_STAGE_ROW} | change |", "|---|---:|---:|---:|"]
    for name in table["partial"]:
        before, after = table["partial"][name]["dsc"], table[LESION_STAGE_ROW][name]["dsc"]
        lines.append(f"| {name} | {before:.3f} | {after:.3f} | {after - before:+.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(text)
    merge_summary(args.name, {"demo": str(args.demo), "seed": meta["seed"], "machine": machine_line(),
                              "lesion_stage_train_s": seconds,
                              "dsc": {row: {k: v["dsc"] for k, v in cols.items()} for row, cols in table.items()}})


if __name__ == "__main__":
    main()
