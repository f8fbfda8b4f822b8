"""OpenKBP: one head-and-neck model from real clinical partial labels (each CT contours a different subset of 7
organs), partial losses against naive training, the 30 fully contoured cases alone, and partial + self-training.

    .venv/bin/python bench/openkbp_partial.py --out /tmp/openkbp                 # ~25 min of CPU per row
    .venv/bin/python bench/openkbp_partial.py --out /tmp/openkbp --budget 0.3    # 30% of the iterations
    .venv/bin/python bench/openkbp_partial.py --out /tmp/openkbp --device cuda --preset 3mm

The collection is the data folder imported as it is (`import:` in a manifest; cases.json gives each case's
contoured organs, so an organ a case did not contour is unknown, not background). `fully_annotated_only` trains
on the `train_fully_annotated` cases of splits.json. `partial+self_training` is paper 004's round: the partial row's
model is its teacher (the teacher's configuration is exactly the partial row's, so the checkpoint is reused rather
than trained twice), pseudo-labels fill the organs each case did not contour (class-wise fusion: a contour always
wins), and a student is trained from scratch with the same iterations. Every row uses one plan, network, iteration
count and seed, and is scored on the `validation` cases, each organ only on the cases that contour it.

Writes OUT/openkbp_results.json, OUT/runs/ROW (checkpoints), bench/results/openkbp_partial.md and the
`openkbp_partial` entry of bench/results/summary.json. --resume reuses rows already scored in OUT.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    SHARED_DATA,
    add_row_arguments,
    earlier_results,
    machine_line,
    merge_summary,
    organ_markdown,
    pending_rows,
    run_row,
)
from _common import write_manifests as write_manifest_files

from unimos.utils.atomic import write_json_atomic, write_text_atomic

DEFAULT_ITERATIONS = 3500
"""About 25 minutes of training per row on 2 CPU cores with the `3mm-small` plan (batch 2)."""
ROWS = ("partial", "naive", "fully_annotated_only", "partial+self_training")
HARD = ("esophagus", "larynx")
"""The two organs contoured least often (59 and 81 of 170 training cases): the issue's headline pair."""


def write_manifests(data: Path, out: Path) -> dict[str, Path]:
    """`partial`: the folder imported as it is; `fully`: the fully contoured training cases plus validation."""
    meta = json.loads((data / "dataset.json").read_text())
    names = {int(v): n for n, v in meta["labels"].items() if int(v) != 0}
    splits = json.loads((data / "splits.json").read_text())
    contoured = {cid: entry["annotated_classes"]
                 for cid, entry in json.loads((data / "cases.json").read_text()).items()}
    project = {"name": "openkbp-partial-bench", "classes": [names[v] for v in sorted(names)]}

    def case(cid: str, split: str, per_case: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": cid, "image": str((data / "imagesTr" / f"{cid}_0000.nii.gz").resolve()),
                                 "label": str((data / "labelsTr" / f"{cid}.nii.gz").resolve()), "split": split}
        if per_case:
            entry["annotated_classes"] = contoured[cid]
        return entry

    collections = {
        "partial": [{"name": "openkbp", "import": str(data.resolve())}],
        "fully": [
            {"name": "openkbp_fully_contoured", "modality": "CT", "kind": "full", "labels": names,
             "cases": [case(cid, "train", False) for cid in splits["train_fully_annotated"]]},
            {"name": "openkbp_validation", "modality": "CT", "kind": "partial", "labels": names,
             "cases": [case(cid, "validation", True) for cid in splits["validation"]]},
        ],
    }
    header = "# OpenKBP partial-label benchmark ({name}), written by bench/openkbp_partial.py.\n"
    paths = write_manifest_files(out, collections, project, header)
    return paths


def reuse_as_teacher(partial_run: Path, self_training_run: Path) -> None:
    """Place the partial row's final checkpoint as round 0 (the teacher) of the self-training run."""
    round0 = self_training_run / "round_0"
    round0.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):
        shutil.copy2(partial_run / f"checkpoint_final{suffix}", round0 / f"checkpoint_final{suffix}")


def goals(tables: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's goals, each as one line with the measured numbers."""
    lines = []
    if "partial" in tables and "naive" in tables:
        p, n = tables["partial"], tables["naive"]
        hard_p = sum(p[o]["dsc"] for o in HARD) / len(HARD)
        hard_n = sum(n[o]["dsc"] for o in HARD) / len(HARD)
        lines.append(f"partial - naive on esophagus + larynx: {hard_p - hard_n:+.3f} (goal >= +0.10: "
                     f"{'met' if hard_p - hard_n >= 0.10 else 'missed'})")
        worst = min((p[o]["dsc"] - n[o]["dsc"], o) for o in p if o in n and not o.startswith("mean"))
        lines.append(f"worst organ, partial - naive: {worst[1]} {worst[0]:+.3f} (goal >= -0.02: "
                     f"{'met' if worst[0] >= -0.02 else 'missed'})")
    if "partial" in tables and "fully_annotated_only" in tables:
        gap = tables["partial"]["mean"]["dsc"] - tables["fully_annotated_only"]["mean"]["dsc"]
        lines.append(f"partial - fully_annotated_only, mean DSC: {gap:+.3f} "
                     f"(goal > 0: {'met' if gap > 0 else 'missed'})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_row_arguments(parser, SHARED_DATA / "openkbp", DEFAULT_ITERATIONS)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args(argv)

    from unimos.pipelines.demo import ensure_empty_output
    from unimos.pipelines.project import checked_manifest, plan_manifest
    from unimos.training.config import TrainConfig

    if not (args.data / "cases.json").exists():
        print(f"error: {args.data}: no cases.json here. Fix: give --data the openkbp folder of ../shared/data",
              file=sys.stderr)
        return 2
    if not args.resume:
        ensure_empty_output(args.out)
    if "partial+self_training" in args.rows and "partial" not in args.rows \
            and not (args.out / "runs" / "partial" / "checkpoint_final.json").exists():
        args.rows.insert(0, "partial")  # the self-training row's teacher
    started = time.perf_counter()
    paths = write_manifests(args.data, args.out)
    manifests = {name: checked_manifest(path)[0] for name, path in paths.items()}
    plan = plan_manifest(manifests["partial"], args.out / "plan.json", args.preset, seed=args.seed)
    iterations = max(1, round(DEFAULT_ITERATIONS * args.budget))
    organs = list(manifests["partial"].taxonomy.names[1:])
    row_setup = {  # row -> (collection, loss, strategy)
        "partial": ("partial", "partial", "supervised"),
        "naive": ("partial", "naive", "supervised"),
        "fully_annotated_only": ("fully", "partial", "supervised"),
        "partial+self_training": ("partial", "partial", "self_training"),
    }
    results_path = args.out / "openkbp_results.json"
    results = earlier_results(results_path, args.resume)
    for row in pending_rows(ROWS, args.rows, results, results_path):
        collection, method, strategy = row_setup[row]
        config = TrainConfig(method=method, strategy=strategy, iterations=iterations, seed=args.seed,
                             device=args.device, checkpoint_every=500, deep_supervision=True)
        if strategy == "self_training":
            reuse_as_teacher(args.out / "runs" / "partial", args.out / "runs" / row)
        results[row] = {**run_row(row, manifests[collection], plan, args.out, config, organs, {"mean": organs},
                                  score_split="validation", resume=strategy == "self_training"),
                        "collection": collection}
        write_json_atomic(results_path, results)
        print(f"{row}: mean DSC {results[row]['table']['mean']['dsc']:.3f} "
              f"({results[row]['train_s'] / 60:.1f} min training)", flush=True)

    tables = {row: v["table"] for row, v in results.items()}
    header = (f"OpenKBP partial-label benchmark, {machine_line()} (device {args.device}); seed {args.seed}; plan "
              f"`{args.preset}` at 3 mm, patch {plan.patch_size}, batch {plan.batch_size}, DynUNet with deep "
              f"supervision, {iterations} iterations per row (budget {args.budget}; self-training: the partial "
              f"row as teacher + a student of {iterations}); training minutes per row: "
              + ", ".join(f"{r} {v['train_s'] / 60:.1f}" for r, v in results.items())
              + f". Scored on the {len(manifests['partial'].split('validation'))} validation cases, each organ only "
              "on the cases that contour it (column `cases`).")
    table = organ_markdown(tables, organs, {"mean": "mean (7 organs)"}, header, counts=True)
    table += "\n" + "\n".join(goals(tables)) + "\n"
    print(table)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "openkbp_partial.md", table)
    merge_summary("openkbp_partial", {
        row: {**{o: t[o]["dsc"] for o in organs if o in t}, "mean": t["mean"]["dsc"]} for row, t in tables.items()},
        args.results)
    write_json_atomic(args.out / "openkbp_meta.json", {
        "date": str(datetime.date.today()), "seed": args.seed, "iterations_per_row": iterations,
        "budget": args.budget, "preset": args.preset, "plan_hash": plan.hash, "patch_size": plan.patch_size,
        "batch_size": plan.batch_size, "device": args.device, "total_s": time.perf_counter() - started,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
