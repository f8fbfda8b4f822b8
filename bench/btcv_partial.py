"""One 13-organ model from single-organ sources made of real BTCV CTs, against naive training, the two fully
labeled cases alone, partial labels plus a semi-supervised strategy, and the fully labeled upper bound.

    .venv/bin/python bench/btcv_partial.py --out /tmp/btcv                  # ~30 min of CPU per row
    .venv/bin/python bench/btcv_partial.py --out /tmp/btcv --budget 0.4     # 40% of the iterations
    .venv/bin/python bench/btcv_partial.py --out /tmp/btcv --device cuda --preset 3mm

The 14 `train` cases of `splits.json` are dealt out with a fixed seed: 2 cases keep all 13 organs (full_src),
the others go to liver_src, kidney_src, spleen_src, pancreas_src and vessels_src, whose label files (written
under OUT/data/labels, never into the data folder) keep only that source's organs. A second collection turns 4
of the partial cases into unlabeled scans. Everything is declared in plain manifests (OUT/data/*.yaml), the way
a user would; unimos has no code path special to this data set. Every row trains with the same plan, network,
iterations and seed, and is scored on the 4 `validation` cases (DSC, NSD at 2 mm, HD95).

Writes OUT/btcv_results.json, OUT/runs/ROW (checkpoints), bench/results/btcv_partial.md and the `btcv_partial`
entry of bench/results/summary.json. --resume reuses rows already scored in OUT.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    SHARED_DATA,
    add_row_arguments,
    machine_line,
    merge_summary,
    organ_markdown,
    run_row,
    write_kept_label,
)
from _common import write_manifests as write_manifest_files

from unimos.utils.atomic import write_json_atomic, write_text_atomic

SOURCE_ORGANS: dict[str, tuple[str, ...]] = {
    "liver_src": ("liver",),
    "kidney_src": ("right_kidney", "left_kidney"),
    "spleen_src": ("spleen",),
    "pancreas_src": ("pancreas",),
    "vessels_src": ("aorta", "inferior_vena_cava", "portal_and_splenic_vein"),
}
"""Label names as the data folder's dataset.json spells them (unimos maps them onto its taxonomy)."""
FULL_CASES = 2
UNLABELED_FROM = ("liver_src", "kidney_src", "vessels_src", "pancreas_src")
"""The unlabeled variant takes the last case of each of these sources."""
SYNAPSE8 = ("spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta", "pancreas")
DEFAULT_ITERATIONS = 4500
"""About 30 minutes of training per supervised row on 2 CPU cores with the `3mm-small` plan (batch 2)."""
ROWS = ("partial", "naive", "upper_bound", "full_src_only", "partial+ssl")


def assign_sources(train_ids: list[str], seed: int) -> dict[str, list[str]]:
    """Deal the training cases out: FULL_CASES to full_src, the rest round-robin over the partial sources."""
    order = [train_ids[i] for i in np.random.default_rng(seed).permutation(len(train_ids))]
    sources: dict[str, list[str]] = {"full_src": sorted(order[:FULL_CASES])}
    names = list(SOURCE_ORGANS)
    for name in names:
        sources[name] = []
    for i, case_id in enumerate(order[FULL_CASES:]):
        sources[names[i % len(names)]].append(case_id)
    return sources


def unlabeled_variant(sources: dict[str, list[str]]) -> dict[str, list[str]]:
    """The same assignment with the last case of each UNLABELED_FROM source moved to an unlabeled source."""
    variant = {name: list(ids) for name, ids in sources.items()}
    variant["unlabeled_src"] = []
    for name in UNLABELED_FROM:
        if len(variant[name]) > 1:
            variant["unlabeled_src"].append(variant[name].pop())
    return variant


def case_entry(data: Path, case_id: str, label: Path | None, split: str) -> dict[str, Any]:
    """A manifest case of a folder in the nnU-Net raw layout (imagesTr/ID_0000.nii.gz), its label if any."""
    entry: dict[str, Any] = {"id": case_id, "image": str((data / "imagesTr" / f"{case_id}_0000.nii.gz").resolve())}
    if label is not None:
        entry["label"] = str(label.resolve())
    entry["split"] = split
    return entry


def write_manifests(data: Path, out: Path, seed: int) -> dict[str, Any]:
    """Derived label files and the four manifests (partial, ssl, full_only, upper); returns paths and sources."""
    meta = json.loads((data / "dataset.json").read_text())
    value_of = {name: int(v) for name, v in meta["labels"].items() if int(v) != 0}
    all_labels = {v: name for name, v in value_of.items()}
    splits = json.loads((data / "splits.json").read_text())
    sources = assign_sources(list(splits["train"]), seed)
    label_dir = out / "data" / "labels"
    original = {cid: data / "labelsTr" / f"{cid}.nii.gz" for cid in [*splits["train"], *splits["validation"]]}
    derived: dict[str, Path] = {}
    for name, organs in SOURCE_ORGANS.items():
        for cid in sources[name]:
            derived[cid] = write_kept_label(original[cid], [value_of[o] for o in organs],
                                               label_dir / f"{cid}.nii.gz")

    def source(name: str, kind: str, ids: list[str], labels: dict[int, str] | None, split: str = "train") -> dict:
        spec: dict[str, Any] = {"name": name, "modality": "CT", "kind": kind}
        if labels is not None:
            spec["labels"] = labels
        label_of = derived if kind == "partial" else original
        spec["cases"] = [case_entry(data, cid, label_of[cid] if kind != "unlabeled" else None, split) for cid in ids]
        return spec

    def partial_sources(assignment: dict[str, list[str]]) -> list[dict]:
        return [source(n, "partial", assignment[n], {value_of[o]: o for o in SOURCE_ORGANS[n]})
                for n in SOURCE_ORGANS if assignment[n]]

    test = source("btcv_validation", "full", list(splits["validation"]), all_labels, split="test")
    full = source("full_src", "full", sources["full_src"], all_labels)
    variant = unlabeled_variant(sources)
    collections = {
        "partial": [full, *partial_sources(sources), test],
        "ssl": [full, *partial_sources(variant), source("unlabeled_src", "unlabeled", variant["unlabeled_src"], None),
                test],
        "full_only": [full, test],
        "upper": [source("all_full", "full", list(splits["train"]), all_labels), test],
    }
    project = {"name": "btcv-partial-bench", "classes": [all_labels[v] for v in sorted(all_labels)]}
    header = (f"# BTCV partial-label benchmark ({{name}}), written by bench/btcv_partial.py, seed {seed}.\n"
              f"# Images are read from {data.resolve()}; partial label files live in {label_dir.resolve()}.\n")
    paths = write_manifest_files(out, collections, project, header)
    return {"manifests": paths, "sources": sources, "unlabeled_variant": variant}


MEANS = {"mean13": "mean (13 organs)", "mean8": "mean (Synapse 8)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_row_arguments(parser, SHARED_DATA / "btcv", DEFAULT_ITERATIONS)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--ssl-strategy", default="mean_teacher",
                        help="strategy of the partial+ssl row (default: the best of the SSL demo at seed 0)")
    args = parser.parse_args(argv)

    from unimos.pipelines.demo import ensure_empty_output
    from unimos.pipelines.project import checked_manifest, plan_manifest
    from unimos.training.config import TrainConfig

    if not (args.data / "splits.json").exists():
        print(f"error: {args.data}: no splits.json here. Fix: give --data the BTCV folder of ../shared/data",
              file=sys.stderr)
        return 2
    if not args.resume:
        ensure_empty_output(args.out)
    started = time.perf_counter()
    made = write_manifests(args.data, args.out, args.seed)
    manifests = {name: checked_manifest(path)[0] for name, path in made["manifests"].items()}
    # One plan for every row, from the partial collection (what a user of the partial sources would have).
    plan_path = args.out / "plan.json"
    plan = plan_manifest(manifests["partial"], plan_path, args.preset, seed=args.seed)
    iterations = max(1, round(DEFAULT_ITERATIONS * args.budget))
    organs = list(manifests["partial"].taxonomy.names[1:])
    means = {"mean13": organs, "mean8": list(SYNAPSE8)}
    row_setup = {  # row -> (collection, loss, strategy)
        "partial": ("partial", "partial", "supervised"),
        "naive": ("partial", "naive", "supervised"),
        "full_src_only": ("full_only", "partial", "supervised"),
        "partial+ssl": ("ssl", "partial", args.ssl_strategy),
        "upper_bound": ("upper", "partial", "supervised"),
    }
    results_path = args.out / "btcv_results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    for row in args.rows:
        collection, method, strategy = row_setup[row]
        name = f"partial+{strategy}" if row == "partial+ssl" else row
        if name in results:
            print(f"{name}: reused from {results_path}", flush=True)
            continue
        config = TrainConfig(method=method, strategy=strategy, iterations=iterations, seed=args.seed,
                             device=args.device, checkpoint_every=500, deep_supervision=True)
        results[name] = {**run_row(name, manifests[collection], plan, args.out, config, organs, means),
                         "collection": collection}
        write_json_atomic(results_path, results)
        print(f"{name}: mean13 DSC {results[name]['table']['mean13']['dsc']:.3f}, mean8 "
              f"{results[name]['table']['mean8']['dsc']:.3f} ({results[name]['train_s'] / 60:.1f} min training)",
              flush=True)

    header = (f"BTCV partial-label benchmark, {machine_line()} (device {args.device}); seed {args.seed}; "
              f"plan `{args.preset}` at 3 mm, patch {plan.patch_size}, "
              f"batch {plan.batch_size}, DynUNet with deep supervision, {iterations} iterations per row "
              f"(budget {args.budget}); training minutes per row: "
              + ", ".join(f"{r} {v['train_s'] / 60:.1f}" for r, v in results.items())
              + f". Scored on the 4 validation cases {sorted(c.case_id for c in manifests['partial'].split('test'))}.")
    table = organ_markdown({row: v["table"] for row, v in results.items()}, organs, MEANS, header)
    print(table)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "btcv_partial.md", table + "\n")
    merge_summary("btcv_partial", {
        row: {**{o: v["table"][o]["dsc"] for o in organs if o in v["table"]},
              "mean13": v["table"]["mean13"]["dsc"], "mean8": v["table"]["mean8"]["dsc"]}
        for row, v in results.items()}, args.results)
    write_json_atomic(args.out / "btcv_meta.json", {
        "date": str(datetime.date.today()), "seed": args.seed, "iterations_per_row": iterations,
        "budget": args.budget, "preset": args.preset, "plan_hash": plan.hash, "patch_size": plan.patch_size,
        "batch_size": plan.batch_size, "device": args.device, "sources": made["sources"],
        "unlabeled_variant": made["unlabeled_variant"], "total_s": time.perf_counter() - started,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
