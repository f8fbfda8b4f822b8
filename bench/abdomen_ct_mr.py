"""One abdominal model for CT and MR on real scans: the BTCV partial-label sources (CT) plus CHAOS T2-SPIR (MR) as one
more source, scored on each modality's own validation cases, against single-modality models, naive training and the
sampling ablation of paper 002.

    .venv/bin/python bench/abdomen_ct_mr.py --out /tmp/ct-mr                  # ~20-30 min of CPU per row
    .venv/bin/python bench/abdomen_ct_mr.py --out /tmp/ct-mr --budget 0.4     # 40% of the iterations
    .venv/bin/python bench/abdomen_ct_mr.py --out /tmp/ct-mr --device cuda --budget 4

The CT sources are those of bench/btcv_partial.py (same seed, same deal of the 14 BTCV `train` cases: 2 fully labeled,
the others liver, kidneys, spleen, pancreas and vessels sources whose label files keep only their organs); CHAOS MR
adds its 10 `train` cases with liver, right/left kidney and spleen. Everything is declared in plain manifests
(OUT/data/*.yaml); unimos has no code path special to these data. Rows, at equal iterations and seed:

- ct_mr_partial: one model on every source (candidate-set losses, class -> modality -> dataset sampling);
- ct_only: the same on the BTCV sources alone (same plan);
- mr_only: the same on CHAOS alone, 4 classes (its own plan of the same preset: same grid, patch and network);
- ct_mr_naive: every source, unannotated organs read as background;
- ct_mr_mdc: ct_mr_partial with the modality -> dataset -> class sampler (paper 002's sampling ablation);
- mr_only_matched: mr_only trained on as many MR patches as ct_mr_partial's sampler draws from CHAOS (about a fifth
  of its patches: the 4 MR organs are 4 of 13 classes, each shared with the CT sources), so that the two compare per
  MR patch seen, not per iteration;
- ct_only_matched: ct_only trained on as many CT patches as ct_mr_partial draws from the BTCV sources (the rest of
  its patches), so that a CT gap between ct_mr_partial and ct_only can be read as fewer CT patches (the shared
  budget) or as negative transfer from MR.

Each row's checkpoint is scored on the BTCV `validation` CTs (13 organs) and the CHAOS `validation` MRs (4 organs);
every test case is normalised as its manifest's modality says (CT: clip + z-score of the plan, MR: per-volume
z-score): that tag is the only thing the model is told besides the image. After the rows, the ct_mr_partial
checkpoint predicts one CT and one MR with `unimos predict` (time, peak memory, output geometry), and the validation
cases once more with the other modality's tag (what a wrong tag does, predicted with --force past the intensity
check that refuses it).

Writes OUT/ct_mr_results.json, OUT/runs/ROW (checkpoints), OUT/report (the ct_mr_partial run's HTML report),
bench/results/abdomen_ct_mr.md and the `abdomen_ct_mr` entry of bench/results/summary.json. --resume reuses rows
already scored in OUT.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import btcv_partial
from _common import (
    SHARED_DATA,
    add_row_arguments,
    machine_line,
    median_step_seconds,
    merge_summary,
    organ_table,
    pending_rows,
    run_row,
    write_kept_label,
)
from _common import write_manifests as write_manifest_files
from btcv_partial import case_entry

from unimos.utils.atomic import write_json_atomic, write_text_atomic

DEFAULT_ITERATIONS = btcv_partial.DEFAULT_ITERATIONS
ROWS = ("ct_mr_partial", "mr_only", "ct_only", "ct_mr_naive", "ct_mr_mdc", "mr_only_matched", "ct_only_matched")
ROW_SETUP = {  # row -> (collection, loss, sampler)
    "ct_mr_partial": ("ct_mr", "partial", "cmd"),
    "ct_only": ("ct", "partial", "cmd"),
    "mr_only": ("mr", "partial", "cmd"),
    "ct_mr_naive": ("ct_mr", "naive", "cmd"),
    "ct_mr_mdc": ("ct_mr", "partial", "mdc"),
    "mr_only_matched": ("mr", "partial", "cmd"),
    "ct_only_matched": ("ct", "partial", "cmd"),
}
MATCHED_ROWS = {"mr_only_matched": "MR", "ct_only_matched": "CT"}  # row -> the modality whose patches it matches
FOREGROUND_FRACTION = 0.9  # TrainConfig's default
TEST_SOURCES = {"CT": "btcv_validation", "MR": "chaos_validation"}


def _dataset(folder: Path) -> tuple[dict[int, str], dict[str, list[str]]]:
    meta = json.loads((folder / "dataset.json").read_text())
    labels = {int(v): name for name, v in meta["labels"].items() if int(v) != 0}
    return labels, json.loads((folder / "splits.json").read_text())


def write_manifests(btcv: Path, chaos: Path, out: Path, seed: int) -> dict[str, Any]:
    """Derived partial label files and the three manifests (ct_mr, ct, mr); returns their paths and the sources."""
    ct_labels, ct_splits = _dataset(btcv)
    mr_labels, mr_splits = _dataset(chaos)
    value_of = {name: v for v, name in ct_labels.items()}
    sources = btcv_partial.assign_sources(list(ct_splits["train"]), seed)
    label_dir = out / "data" / "labels"
    ct_label = {cid: btcv / "labelsTr" / f"{cid}.nii.gz" for cid in [*ct_splits["train"], *ct_splits["validation"]]}
    mr_label = {cid: chaos / "labelsTr" / f"{cid}.nii.gz" for cid in [*mr_splits["train"], *mr_splits["validation"]]}
    ct_sources = [{"name": "full_src", "modality": "CT", "kind": "full", "labels": ct_labels,
                   "cases": [case_entry(btcv, cid, ct_label[cid], "train") for cid in sources["full_src"]]}]
    for name, organs in btcv_partial.SOURCE_ORGANS.items():
        keep = [value_of[o] for o in organs]
        ct_sources.append({"name": name, "modality": "CT", "kind": "partial",
                           "labels": {value_of[o]: o for o in organs},
                           "cases": [case_entry(btcv, cid, write_kept_label(ct_label[cid], keep,
                                                                            label_dir / f"{cid}.nii.gz"), "train")
                                     for cid in sources[name]]})

    def mr_train(kind: str) -> dict[str, Any]:
        return {"name": "chaos_mr", "modality": "MR", "kind": kind, "labels": mr_labels,
                "cases": [case_entry(chaos, cid, mr_label[cid], "train") for cid in mr_splits["train"]]}

    def test(modality: str, kind: str = "full") -> dict[str, Any]:
        folder, labels, splits, label_of = ((btcv, ct_labels, ct_splits, ct_label) if modality == "CT"
                                            else (chaos, mr_labels, mr_splits, mr_label))
        return {"name": TEST_SOURCES[modality], "modality": modality, "kind": kind, "labels": labels,
                "cases": [case_entry(folder, cid, label_of[cid], "test") for cid in splits["validation"]]}

    all_classes = [ct_labels[v] for v in sorted(ct_labels)]
    # CHAOS annotates 4 of the 13 classes: in a 13-class project its sources are partial (its validation cases are
    # scored on those 4)
    ct_mr = {"project": {"name": "abdomen-ct-mr", "classes": all_classes},
             "sources": [*ct_sources, mr_train("partial"), test("CT"), test("MR", "partial")]}
    ct = {"project": {"name": "abdomen-ct", "classes": all_classes},
          "sources": [*ct_sources, test("CT"), test("MR", "partial")]}
    mr = {"project": {"name": "abdomen-mr", "classes": [mr_labels[v] for v in sorted(mr_labels)]},
          "sources": [mr_train("full"), test("MR")]}
    header = (f"# Abdominal CT+MR benchmark ({{name}}), written by bench/abdomen_ct_mr.py, seed {seed}.\n"
              f"# Images are read from {btcv.resolve()} and {chaos.resolve()}; partial CT label files live in "
              f"{label_dir.resolve()}.\n")
    paths = {}
    for name, payload in {"ct_mr": ct_mr, "ct": ct, "mr": mr}.items():
        paths.update(write_manifest_files(out, {name: payload["sources"]}, payload["project"], header))
    return {"manifests": paths, "sources": {**sources, "chaos_mr": list(mr_splits["train"])}}


def mr_patch_share(manifest: Any, out: Path, plan: Any, sampler: str, seed: int, draws: int) -> float:
    """The share of MR cases among `draws` patches of a sampler over the manifest's training cases (the draws of the
    training loop's sampler, replayed with a generator of the same seed). Preprocesses the manifest into its cache
    under OUT/cache first, as its rows do (kept when it is there), so that a matched row may run on its own."""
    import numpy as np

    from unimos.preprocess.cache import open_cache, preprocess_manifest
    from unimos.training.batches import PatchSource

    cache = out / "cache" / Path(manifest.path).stem
    preprocess_manifest(manifest, plan, cache)
    cases = [c for c in open_cache(cache, plan) if c.meta["split"] == "train" and c.meta["has_label"]]
    source = PatchSource(cases, plan.patch_size, sampler, FOREGROUND_FRACTION, seed=seed)
    rng = np.random.default_rng(seed)
    picked = [source.cases[source.sampler.draw(rng).case].meta["modality"] for _ in range(draws)]
    return sum(m == "MR" for m in picked) / draws


def modality_tables(summary: dict[str, Any], organs: dict[str, list[str]]) -> dict[str, Any]:
    """{modality: organ table (organ_table's shape, with its "mean")} from an evaluation summary's per_modality."""
    out = {}
    for modality, entry in (summary.get("per_modality") or {}).items():
        members = [o for o in organs[modality] if o in entry["per_structure"]]
        out[modality] = organ_table(entry, members, {"mean": members})
    return out


def predict_check(checkpoint: Path, images: dict[str, Path], out: Path) -> dict[str, Any]:
    """`unimos predict` on one CT and one MR: seconds and peak memory (its predict_log.json), output geometry."""
    import nibabel as nib
    import numpy as np

    rows = {}
    for modality, image in images.items():
        target = out / f"predict_{modality}"
        command = [str(Path(sys.executable).parent / "unimos"), "predict", str(checkpoint), str(image), "--out",
                   str(target), "--modality", modality, "--overwrite"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        log = json.loads((target / "predict_log.json").read_text())[-1]
        source, written = nib.load(str(image)), nib.load(log["output"])
        rows[modality] = {"image": image.name, "seconds": log["seconds"], "peak_rss_mib": log["peak_rss_mib"],
                          "input_shape": list(source.shape), "output_shape": list(written.shape),
                          "same_grid": bool(source.shape == written.shape
                                            and np.allclose(source.affine, written.affine, atol=1e-4)),
                          "command": " ".join(["unimos", *command[1:]])}
    return rows


def wrong_tag_scores(checkpoint: Path, manifest: Any, out: Path, organs: dict[str, list[str]]) -> dict[str, Any]:
    """Each validation set predicted with the other modality's tag (--force past the intensity check that refuses
    it), scored: what telling the model the wrong modality costs. Keys: the true modality."""
    from unimos.evaluation.evaluate import evaluate_predictions
    from unimos.inference.model import load_model
    from unimos.inference.predictor import PredictOptions, predict_files
    from unimos.pipelines.run import images_by_modality

    model = load_model(checkpoint)
    pred_dir = out / "predictions" / "ct_mr_partial_wrong_tag"
    other = {"CT": "MR", "MR": "CT"}
    for modality, images in images_by_modality(manifest, "test").items():
        predict_files(model, images, pred_dir, PredictOptions(modality=other[modality], force=True), overwrite=True)
    evaluate_predictions(pred_dir, manifest, out / "evaluation" / "ct_mr_partial_wrong_tag", split="test")
    summary = json.loads((out / "evaluation" / "ct_mr_partial_wrong_tag" / "summary.json").read_text())
    return modality_tables(summary, organs)


def markdown(results: dict[str, Any], organs: dict[str, list[str]], header: str, extra: list[str]) -> str:
    rows = list(results)
    lines = [header, ""]
    for modality in ("CT", "MR"):
        lines += [f"**{modality}: DSC on the {TEST_SOURCES[modality]} cases** (NSD at 2 mm in brackets)", "",
                  "| organ | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
        for organ in [*organs[modality], "mean"]:
            cells = []
            for row in rows:
                entry = results[row]["tables"].get(modality, {}).get(organ)
                cells.append("-" if not entry or entry.get("dsc") is None
                             else f"{entry['dsc']:.3f} ({entry['nsd']:.3f})")
            name = f"**mean ({len(organs[modality])} organs)**" if organ == "mean" else organ
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"HD95 (mm), mean over the {modality} organs: " + ", ".join(
            f"{row} {results[row]['tables'][modality]['mean']['hd95']:.1f}" for row in rows
            if results[row]["tables"].get(modality, {}).get("mean", {}).get("hd95") is not None), ""]
    return "\n".join(lines + extra)


def goal_lines(results: dict[str, Any]) -> list[str]:
    def mean(row: str, modality: str) -> float | None:
        entry = results.get(row, {}).get("tables", {}).get(modality, {}).get("mean")
        return None if not entry else entry["dsc"]

    checks = [("CHAOS MR: ct_mr_partial >= mr_only (positive transfer)", "ct_mr_partial", "mr_only", "MR", 0.0),
              ("BTCV CT: ct_mr_partial within 0.01 of ct_only or better", "ct_mr_partial", "ct_only", "CT", -0.01),
              ("BTCV CT: ct_mr_partial >= ct_mr_naive + 0.10", "ct_mr_partial", "ct_mr_naive", "CT", 0.10),
              ("(analysis) CHAOS MR per MR patch seen: ct_mr_partial >= mr_only_matched", "ct_mr_partial",
               "mr_only_matched", "MR", 0.0),
              ("(analysis) BTCV CT per CT patch seen: ct_mr_partial >= ct_only_matched", "ct_mr_partial",
               "ct_only_matched", "CT", 0.0)]
    lines = ["| goal | measured | met |", "|---|---|---|"]
    for text, row, other, modality, margin in checks:
        a, b = mean(row, modality), mean(other, modality)
        if a is None or b is None:
            lines.append(f"| {text} | not run | - |")
            continue
        lines.append(f"| {text} | {a:.3f} vs {b:.3f} ({a - b:+.3f}) | {'yes' if a - b >= margin else 'no'} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_row_arguments(parser, SHARED_DATA / "btcv", DEFAULT_ITERATIONS)
    parser.add_argument("--chaos", type=Path, default=SHARED_DATA / "chaos_mr", help="the CHAOS MR folder")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    args = parser.parse_args(argv)

    from unimos.pipelines.demo import ensure_empty_output
    from unimos.pipelines.project import checked_manifest, plan_manifest
    from unimos.report.html import write_report
    from unimos.training.config import TrainConfig

    problems = [f"{folder}: no splits.json here. Fix: give {flag} the {name} folder of ../shared/data"
                for folder, flag, name in ((args.data, "--data", "btcv"), (args.chaos, "--chaos", "chaos_mr"))
                if not (folder / "splits.json").exists()]
    if problems:
        print("error: " + "\nerror: ".join(problems), file=sys.stderr)
        return 2
    if not args.resume:
        ensure_empty_output(args.out)
    started = time.perf_counter()
    made = write_manifests(args.data, args.chaos, args.out, args.seed)
    manifests = {name: checked_manifest(path)[0] for name, path in made["manifests"].items()}
    # One plan for the 13-class rows, from the CT+MR collection; mr_only's 4 classes get the same preset's plan.
    plans = {"ct_mr": plan_manifest(manifests["ct_mr"], args.out / "plan.json", args.preset, seed=args.seed)}
    plans["ct"] = plans["ct_mr"]
    plans["mr"] = plan_manifest(manifests["mr"], args.out / "plan_mr.json", args.preset, seed=args.seed)
    for key in ("target_spacing_mm", "patch_size", "batch_size", "network"):
        if getattr(plans["mr"], key) != getattr(plans["ct_mr"], key):
            print(f"note: mr_only's plan differs in {key}: {getattr(plans['mr'], key)} vs "
                  f"{getattr(plans['ct_mr'], key)}", flush=True)
    iterations = max(1, round(DEFAULT_ITERATIONS * args.budget))
    organs = {"CT": list(manifests["ct_mr"].taxonomy.names[1:]), "MR": list(manifests["mr"].taxonomy.names[1:])}
    results_path = args.out / "ct_mr_results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    for row in pending_rows(ROWS, args.rows, results, results_path):
        collection, method, sampler = ROW_SETUP[row]
        steps = iterations
        if row in MATCHED_ROWS:
            share = mr_patch_share(manifests["ct_mr"], args.out, plans["ct_mr"], "cmd", args.seed,
                                   iterations * plans["ct_mr"].batch_size)
            modality = MATCHED_ROWS[row]
            share = share if modality == "MR" else 1.0 - share
            steps = max(1, round(iterations * share))
            print(f"{row}: ct_mr_partial draws {share:.1%} of its patches from the {modality} sources: {steps} "
                  "iterations", flush=True)
        config = TrainConfig(method=method, sampler=sampler, iterations=steps, seed=args.seed,
                             device=args.device, checkpoint_every=500, deep_supervision=True)
        scored = run_row(row, manifests[collection], plans[collection], args.out, config, organs["CT"],
                         {"mean": organs["CT"]}, resume=args.resume)
        summary = json.loads((args.out / "evaluation" / row / "summary.json").read_text())
        results[row] = {"tables": modality_tables(summary, organs), "train_s": scored["train_s"], "iterations": steps,
                        "row_s": scored["row_s"], "collection": collection, "loss": method, "sampler": sampler,
                        "s_per_step": median_step_seconds(args.out / "runs" / row)}
        write_json_atomic(results_path, results)
        print(f"{row}: " + ", ".join(f"{m} mean DSC {t['mean']['dsc']:.3f}" for m, t in results[row]["tables"].items()
                                     if t.get("mean", {}).get("dsc") is not None)
              + f" ({scored['train_s'] / 60:.1f} min training)", flush=True)

    extra: dict[str, Any] = {}
    checkpoint = args.out / "runs" / "ct_mr_partial" / "checkpoint_final"
    if "ct_mr_partial" in results and checkpoint.with_suffix(".json").exists():
        test_cases = manifests["ct_mr"].split("test")
        images = {m: next(Path(c.image_paths[0]) for c in test_cases if c.modality == m) for m in ("CT", "MR")}
        extra["predict"] = predict_check(checkpoint, images, args.out)
        extra["wrong_tag"] = wrong_tag_scores(checkpoint, manifests["ct_mr"], args.out, organs)
        write_report(args.out / "evaluation" / "ct_mr_partial", args.out / "report",
                     manifest=made["manifests"]["ct_mr"], predictions=args.out / "predictions" / "ct_mr_partial")
    write_json_atomic(args.out / "ct_mr_extra.json", extra)

    normalisation = "; ".join(
        f"{m}: {v.scheme}"
        + (f" (clip {list(v.clip)} in the scans' units, then mean {v.mean:.1f}, std {v.std:.1f})" if v.clip else "")
        for m, v in plans["ct_mr"].normalisation.items())
    header = (f"Abdominal CT+MR benchmark, {machine_line()} (device {args.device}); seed {args.seed}; plan "
              f"`{args.preset}`: {plans['ct_mr'].target_spacing_mm} mm, patch {plans['ct_mr'].patch_size}, batch "
              f"{plans['ct_mr'].batch_size}, DynUNet with deep supervision; {iterations} iterations per row (budget "
              f"{args.budget}"
              + "".join(f"; {row} {results[row]['iterations']}, the {modality} patches of ct_mr_partial"
                        for row, modality in MATCHED_ROWS.items() if row in results) + "); training minutes per row: "
              + ", ".join(f"{r} {v['train_s'] / 60:.1f}" for r, v in results.items())
              + f". Normalisation by the plan, per modality: {normalisation}; each test case is read with its "
              "manifest's modality tag, the model has no other modality input. CT: the 4 BTCV validation cases; "
              "MR: the 4 CHAOS validation cases.")
    notes = ["**Goals**", "", *goal_lines(results), ""]
    if extra.get("predict"):
        notes += ["**`unimos predict` with the ct_mr_partial checkpoint** (one case each, this machine)", "",
                  "| input | shape | seconds | peak RSS (MiB) | output on the input's grid |", "|---|---|---|---|---|"]
        notes += [f"| {m} {v['image']} | {'x'.join(map(str, v['input_shape']))} | {v['seconds']:.1f} | "
                  f"{v['peak_rss_mib']:.0f} | {'yes' if v['same_grid'] else 'NO'} |"
                  for m, v in extra["predict"].items()]
        notes.append("")
    if extra.get("wrong_tag"):
        right = results["ct_mr_partial"]["tables"]
        notes += ["**A wrong modality tag** (ct_mr_partial, each validation set read as the other modality, "
                  "predicted with --force: without it `unimos predict` refuses the intensities): mean DSC "
                  + ", ".join(f"{m} {extra['wrong_tag'][m]['mean']['dsc']:.3f} (right tag "
                              f"{right[m]['mean']['dsc']:.3f})" for m in extra["wrong_tag"]), ""]
    table = markdown(results, organs, header, notes)
    print(table)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "abdomen_ct_mr.md", table + "\n")
    merge_summary("abdomen_ct_mr", {
        "machine": machine_line(), "iterations": iterations, "budget": args.budget, "device": args.device,
        "rows": {row: {m: {**{o: t[o]["dsc"] for o in organs[m] if o in t}, "mean": t["mean"]["dsc"]}
                       for m, t in v["tables"].items()} | {"train_s": round(v["train_s"], 1)}
                 for row, v in results.items()},
        **({"predict": extra["predict"]} if extra.get("predict") else {}),
        **({"wrong_tag_mean_dsc": {m: t["mean"]["dsc"] for m, t in extra["wrong_tag"].items()}}
           if extra.get("wrong_tag") else {}),
    }, args.results)
    write_json_atomic(args.out / "ct_mr_meta.json", {
        "date": str(datetime.date.today()), "seed": args.seed, "iterations_per_row": iterations,
        "budget": args.budget, "preset": args.preset, "plan_hash": plans["ct_mr"].hash,
        "plan_mr_hash": plans["mr"].hash, "device": args.device, "sources": made["sources"],
        "total_s": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
