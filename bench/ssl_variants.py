"""Strategy variants against supervised on one development seed, to choose defaults on a seed that the reported
table (`demo_seeds.py --ssl`) does not use.

    .venv/bin/python bench/ssl_variants.py --seed 2 --out /tmp/ssl_dev2 [--rows supervised guided_w01]
    .venv/bin/python bench/ssl_variants.py --seed 2 --out /tmp/ceil --rows supervised all_labeled \\
        --labeled 1 --unlabeled 12

The data is the semi-supervised demo's layout (unimos.phantoms.SSL_SOURCES: labeled CTs, unlabeled CTs, 5 test
CTs); `--labeled` / `--unlabeled` change its counts, to measure how the ceiling depends on them.

Rows: every strategy with its defaults (supervised, unimatch, self_training, cps, guided_cps, mean_teacher);
cps_distdw (cps with class_weights=distdw); guided_at1, guided_ramp, guided_w01 (guided_cps with its labeled
Gaussian terms at 1, at 1 ramped over the run, at 0.1, the default); all_labeled, supervised training on the labeled
source plus the unlabeled source with the complete labels the generator kept: the most that the unlabeled scans
could add at the same iterations, a ceiling for every strategy. Prints DSC per organ and writes
OUT/dev_results.json; seed 2's results are in bench/results/ssl_dev_seed2.json (bench/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from unimos.phantoms import SSL_SOURCES, DemoSource
from unimos.pipelines.demo import (
    DEMO_SSL_ITERATIONS,
    SSL_STRATEGIES,
    complete_label_cache,
    demo_results_table,
    prepare_demo,
)
from unimos.pipelines.run import train_and_score
from unimos.training.config import TrainConfig

AT_ONE = {"gt_weight": 1.0, "self_weight": 1.0, "max_weight": 1.0}
ROWS = {
    **{name: (name, {}) for name in SSL_STRATEGIES},  # every strategy with its defaults
    "cps_distdw": ("cps", {"class_weights": "distdw"}),
    "guided_at1": ("guided_cps", AT_ONE),
    "guided_ramp": ("guided_cps", {**AT_ONE, "gaussian_rampup": 1.0}),
    "guided_w01": ("guided_cps", {"gt_weight": 0.1, "self_weight": 0.1, "max_weight": 0.1}),
    "all_labeled": ("supervised", {}),
}
CEILING = "all_labeled"


def with_counts(sources: tuple[DemoSource, ...], labeled: int | None, unlabeled: int | None) -> tuple[DemoSource, ...]:
    """The layout with the labeled (full, train) and unlabeled sources' case counts replaced where given."""
    def count(source: DemoSource) -> int | None:
        if source.kind == "unlabeled":
            return unlabeled
        return labeled if source.split == "train" else None
    return tuple(dataclasses.replace(s, count=count(s)) if count(s) is not None else s for s in sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    parser.add_argument("--iterations", type=int, default=DEMO_SSL_ITERATIONS["default"])
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS))
    parser.add_argument("--labeled", type=int, help="labeled CTs (default: the ssl demo's)")
    parser.add_argument("--unlabeled", type=int, help="unlabeled CTs (default: the ssl demo's)")
    args = parser.parse_args()
    sources = with_counts(SSL_SOURCES, args.labeled, args.unlabeled)
    prepared = prepare_demo(args.out, False, args.seed, 2, lambda _label: None, sources=sources)
    organs = prepared.manifest.taxonomy.names[1:]
    summaries = {}
    for name in args.rows:
        strategy, options = ROWS[name]
        config = TrainConfig(strategy=strategy, strategy_options=options, iterations=args.iterations, seed=args.seed,
                             checkpoint_every=0, deep_supervision=True)
        cache = complete_label_cache(args.out, prepared.plan) if name == CEILING else prepared.cache_dir
        summaries[name], seconds = train_and_score(name, cache, prepared.plan, prepared.manifest, config, args.out)
        print(f"{name}: {seconds:.0f} s training", flush=True)
    table = demo_results_table(summaries, organs)
    (args.out / "dev_results.json").write_text(json.dumps(table, indent=1))
    print(" " * 12, " ".join(o[:6] for o in organs), "mean")
    for name, row in table.items():
        print(f"{name:12s}", " ".join(f"{row[o]['dsc']:.3f}" for o in organs), f"{row['mean']['dsc']:.3f}")


if __name__ == "__main__":
    main()
