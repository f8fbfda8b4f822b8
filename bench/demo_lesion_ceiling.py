"""What the demo's lesions need: the complete-label upper bound trained at several iteration budgets on one
development seed of the demo collection, with each lesion class's DSC on the seed's test CTs.

    .venv/bin/python bench/demo_lesion_ceiling.py --seed 5 --iterations 700 3000 --out /tmp/lesion-ceiling
    .venv/bin/python bench/demo_lesion_ceiling.py --seed 5 --iterations 700 --dice-smooth 1e-5 --out /tmp/lc-eps

The upper bound sees every lesion of every training case (complete labels), so no method trained on the demo's own
labels can segment lesions better at the same budget: where it scores 0, the lesion rows of `unimos demo` measure
nothing. Writes OUT/lesion_ceiling.json and bench/results/demo_lesion_ceiling.md, and the `demo_lesion_ceiling`
entry of bench/results/summary.json. Seed 5 is a development seed: the demo's reported seeds are 0, 1 and 2.

`--dice-smooth EPS` is an experiment, not a unimos option: it trains with the merged Dice's eps set to EPS instead of
paper 002's 1 (eq. 2). With eps = 1, a class absent from a patch scores eps / (sum p + eps), whose gradient pulls
every voxel's probability of that class towards zero with a weight of up to 1 per voxel (over the number of
groups); a lesion is absent from most patches, so this may hold lesions down; eps = 1e-5 (nnU-Net's, MONAI's)
leaves an absent class nearly without gradient.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import machine_line, median_step_seconds, merge_summary

from unimos.pipelines.demo import complete_label_cache, organs_and_lesions, prepare_demo
from unimos.pipelines.run import resolved_precision_name, train_and_score
from unimos.training.config import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=5, help="a development seed (not 0, 1 or 2)")
    parser.add_argument("--iterations", type=int, nargs="+", default=[700, 3000])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--dice-smooth", type=float, default=None, help="experiment: the merged Dice's eps")
    parser.add_argument("--no-deep-supervision", action="store_true",
                        help="experiment: train without deep supervision (a lesion vanishes from its coarse labels)")
    args = parser.parse_args(argv)
    if args.dice_smooth is not None:
        import unimos.training.loop as loop

        build_loss = loop.build_loss
        loop.build_loss = lambda method, **kw: build_loss(method, smooth=args.dice_smooth, **kw)
    prepared = prepare_demo(args.out, False, args.seed, 2, lambda _label: None)
    complete = complete_label_cache(args.out, prepared.plan)
    organs, lesions = organs_and_lesions(prepared.manifest)
    rows: dict[str, dict] = {}
    for iterations in args.iterations:
        name = f"upper_bound_{iterations}"
        config = TrainConfig(method="partial", iterations=iterations, seed=args.seed, precision=args.precision,
                             checkpoint_every=0, deep_supervision=not args.no_deep_supervision)
        summary, seconds = train_and_score(name, complete, prepared.plan, prepared.manifest, config, args.out)
        per = summary["per_structure"]
        rows[name] = {"iterations": iterations, "train_s": round(seconds, 1),
                      "s_per_step": median_step_seconds(args.out / "runs" / name),
                      "organ_mean": sum(per[o]["dsc"] for o in organs) / len(organs),
                      **{lesion: per[lesion]["dsc"] for lesion in lesions}}
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[name].items() if isinstance(v, float)),
              flush=True)
    precision = resolved_precision_name(args.precision, "auto")
    eps = "paper 002's 1" if args.dice_smooth is None else f"{args.dice_smooth:g} (experiment)"
    lines = [f"Demo lesion ceiling: the upper bound (complete labels) on development seed {args.seed}, DSC on its "
             f"test CTs, precision {precision}, merged Dice eps {eps}, deep supervision "
             f"{'off (experiment)' if args.no_deep_supervision else 'on'}; {machine_line()}", "",
             "| iterations | train s | organ mean DSC | " + " | ".join(lesions) + " |",
             "|---|---|---|" + "---|" * len(lesions)]
    for row in rows.values():
        lines.append(f"| {row['iterations']} | {row['train_s']:.0f} | {row['organ_mean']:.3f} | "
                     + " | ".join(f"{row[lesion]:.3f}" for lesion in lesions) + " |")
    table = "\n".join(lines)
    print(table)
    (args.out / "lesion_ceiling.json").write_text(json.dumps(rows, indent=2))
    results = Path(__file__).parent / "results"
    suffix = ("" if args.dice_smooth is None else f"_eps{args.dice_smooth:g}") + \
        ("_no_ds" if args.no_deep_supervision else "")
    (results / f"demo_lesion_ceiling{suffix}.md").write_text(table + "\n")
    merge_summary(f"demo_lesion_ceiling{suffix}", {"seed": args.seed, "precision": precision,
                                                   "dice_smooth": args.dice_smooth or 1.0,
                                                   "deep_supervision": not args.no_deep_supervision,
                                                   "machine": machine_line(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
