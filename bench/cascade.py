"""Coarse-to-fine cascade (paper 001): speed and accuracy effect on the demo data and on a 512 x 512 x 400 CT.

    .venv/bin/python bench/cascade.py --out /tmp/cascade                 # ~15 min on 2 CPU cores
    .venv/bin/python bench/cascade.py --out /tmp/cascade --budget 0.3    # shorter training

Three models on the whole demo collection, `partial` loss, one seed and iteration count:
- `coarse`: plan preset `coarse` (6 mm, small network), the cascade's first stage;
- `fine`: plan `3mm-small`, trained as `unimos demo` trains its partial row (patches anywhere in the volume);
- `fine_roi`: the same with random patches kept within 20 mm of the labeled organs (`--roi-margin-mm 20`), i.e.
  trained only where the cascade will run it.
Rows scored on the demo's held-out test cases: each model alone (`coarse`, `fine`, `fine_roi`), and the cascades
`coarse > fine` and `coarse > fine_roi` (the fine model runs only inside the coarse region grown by 20 mm).
Per row: per-organ DSC / NSD / HD95, mean seconds per case (read to write, in one process) and the share of
voxels the fine model saw. Then the large CT: the TotalSegmentator example CT upsampled to 512 x 512 x 400, each
way of predicting in a fresh `unimos predict` process (case seconds, peak RSS). The demo models learned from
synthetic phantoms, so on the real CT only time, memory and the region's size are reported.

Writes OUT/cascade_results.json, bench/results/cascade.md and the `cascade` entry of bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    SHARED_DATA,
    earlier_results,
    machine_line,
    merge_summary,
    organ_markdown,
    organ_table,
    run_row,
)
from inference_peers import child_env, run_process, upsampled_ct

from unimos.utils.atomic import write_json_atomic, write_text_atomic

DEFAULT_ITERATIONS = 700
MARGIN_MM = 20.0
LARGE_SHAPE = (512, 512, 400)
MODELS = {"coarse": "coarse", "fine": "3mm-small", "fine_roi": "3mm-small"}  # model -> plan preset
CASCADES = {"coarse > fine": "fine", "coarse > fine_roi": "fine_roi"}


def score_cascade(name: str, fine: Path, coarse: Path, manifest: Any, out: Path, organs: list[str],
                  margin_mm: float = MARGIN_MM) -> dict[str, Any]:
    """Predict the test cases through the cascade, score them; organ table, seconds per case, region share."""
    from unimos.evaluation.evaluate import evaluate_predictions
    from unimos.inference.model import load_model
    from unimos.inference.predictor import PredictOptions, predict_files

    folder = name.replace(" > ", "_then_")
    images = sorted({c.image_paths[0] for c in manifest.split("test")})
    records = predict_files(load_model(fine), images, out / "predictions" / folder, PredictOptions(modality="CT"),
                            coarse=load_model(coarse), roi_margin_mm=margin_mm, overwrite=True)
    failed = [r.error for r in records if r.error]
    if failed:
        raise SystemExit(f"{name}: prediction failed: {failed[0]}")
    evaluate_predictions(out / "predictions" / folder, manifest, out / "evaluation" / folder, split="test")
    summary = json.loads((out / "evaluation" / folder / "summary.json").read_text())
    return {"table": organ_table(summary, organs, {"mean": organs}),
            "seconds_per_case": statistics.mean(r.seconds for r in records),
            "roi_share": statistics.mean(r.cascade["roi_share"] for r in records)}


def seconds_per_case(out: Path, row: str) -> float:
    """Mean case seconds of a row that `run_row` predicted (its predict_log.json)."""
    records = json.loads((out / "predictions" / row / "predict_log.json").read_text())
    return statistics.mean(r["seconds"] for r in records)


def large_ct_row(fine: Path, coarse: Path | None, source: Path, work: Path) -> dict[str, Any]:
    """`unimos predict` on the large CT in a fresh process: case seconds, peak RSS, stages, region share."""
    cmd = [sys.executable, "-m", "unimos.cli.main", "predict", str(fine), str(source), "--out", str(work / "pred"),
           "--modality", "CT", *(["--coarse", str(coarse), "--roi-margin-mm", str(MARGIN_MM)] if coarse else [])]
    wall, peak, code = run_process(cmd, child_env(work), work / "log.txt")
    if code != 0:
        raise SystemExit(f"unimos predict failed on {source}; see {work / 'log.txt'}")
    record = json.loads((work / "pred" / "predict_log.json").read_text())[0]
    return {"seconds": record["seconds"], "process_wall_s": wall, "peak_rss_mib": peak, "stages": record["stages"],
            "roi_share": record["cascade"].get("roi_share", 1.0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder (or an earlier one with --resume)")
    parser.add_argument("--budget", type=float, default=1.0, help=f"scales the iterations (1.0 = {DEFAULT_ITERATIONS})")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (training)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="reuse models and rows already in OUT")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 512 x 512 x 400 CT")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from unimos.phantoms import make_demo_data
    from unimos.pipelines.demo import ensure_empty_output
    from unimos.pipelines.project import checked_manifest, plan_manifest
    from unimos.training.config import TrainConfig

    if not args.resume:
        ensure_empty_output(args.out)
    started = time.perf_counter()
    data = args.out / "data"
    if not (data / "manifest.yaml").exists():
        make_demo_data(data, seed=args.seed)
    manifest = checked_manifest(data / "manifest.yaml")[0]
    plans = {preset: plan_manifest(manifest, args.out / f"plan_{preset}.json", preset, seed=args.seed)
             for preset in set(MODELS.values())}
    organs = list(manifest.taxonomy.names[1:])
    iterations = max(1, round(DEFAULT_ITERATIONS * args.budget))
    results_path = args.out / "cascade_results.json"
    results = earlier_results(results_path, args.resume)
    checkpoints = {m: args.out / "runs" / m / "checkpoint_final" for m in MODELS}
    for model, preset in MODELS.items():
        if model in results:
            continue
        config = TrainConfig(method="partial", iterations=iterations, seed=args.seed, device=args.device,
                             checkpoint_every=0, deep_supervision=True,
                             roi_margin_mm=MARGIN_MM if model == "fine_roi" else None)
        results[model] = run_row(model, manifest, plans[preset], args.out, config, organs, {"mean": organs})
        results[model].update(seconds_per_case=seconds_per_case(args.out, model), roi_share=1.0, preset=preset)
        write_json_atomic(results_path, results)
        print(f"{model}: mean DSC {results[model]['table']['mean']['dsc']:.3f}", flush=True)
    for name, fine in CASCADES.items():
        if name not in results:
            results[name] = score_cascade(name, checkpoints[fine], checkpoints["coarse"], manifest, args.out, organs)
            write_json_atomic(results_path, results)
        print(f"{name}: mean DSC {results[name]['table']['mean']['dsc']:.3f}, "
              f"{results[name]['seconds_per_case']:.2f} s/case, region {results[name]['roi_share']:.2f}", flush=True)

    large: dict[str, Any] = results.get("large_ct", {})
    if not args.skip_large:
        source = upsampled_ct(args.data / "totalseg" / "example_ct.nii.gz", args.out / "inputs" / "large_ct.nii.gz",
                              LARGE_SHAPE)
        for name, (fine, coarse) in {"fine": ("fine", None), "coarse > fine": ("fine", "coarse"),
                                     "coarse > fine_roi": ("fine_roi", "coarse")}.items():
            if name not in large:
                large[name] = large_ct_row(checkpoints[fine], checkpoints[coarse] if coarse else None, source,
                                           args.out / "large" / name.replace(" > ", "_then_"))
                results["large_ct"] = large
                write_json_atomic(results_path, results)
            print(f"large CT, {name}: {large[name]['seconds']:.1f} s, peak {large[name]['peak_rss_mib']:.0f} MiB, "
                  f"region {large[name]['roi_share']:.2f}", flush=True)

    rows = [r for r in [*MODELS, *CASCADES] if r in results]
    tables = {r: results[r]["table"] for r in rows}
    header = (f"Coarse-to-fine cascade (paper 001) on the demo data, {machine_line()} (device {args.device}); seed "
              f"{args.seed}; {iterations} iterations per model (budget {args.budget}), `partial` loss, deep "
              f"supervision; coarse plan {plans['coarse'].target_spacing_mm[0]:g} mm patch "
              f"{plans['coarse'].patch_size}, fine plan 3 mm patch {plans['3mm-small'].patch_size}; region "
              f"margin {MARGIN_MM:g} mm. Scored on the {len(manifest.split('test'))} test cases.")
    lines = [organ_markdown(tables, organs, {"mean": "mean (all organs)"}, header), "",
             "| row | mean DSC | s / case (read to write) | share of voxels the fine model saw |", "|---|---|---|---|"]
    lines += [f"| {r} | {results[r]['table']['mean']['dsc']:.3f} | {results[r]['seconds_per_case']:.2f} | "
              f"{results[r]['roi_share']:.2f} |" for r in rows]
    if large:
        lines += ["", f"Large CT (example CT upsampled to {' x '.join(map(str, LARGE_SHAPE))}), fresh `unimos "
                  "predict` process per row; the demo models never saw real CT, so only time, memory and region:", "",
                  "| row | case s | peak RSS MiB | region share | stages (s) |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {r['roi_share']:.2f} | "
                  + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()) + " |" for n, r in large.items()]
    table = "\n".join(lines) + "\n"
    print(table)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "cascade.md", table)
    merge_summary("cascade", {
        **{r: {"mean_dsc": results[r]["table"]["mean"]["dsc"], "seconds_per_case": results[r]["seconds_per_case"],
               "roi_share": results[r]["roi_share"]} for r in rows},
        "large_ct": {n: {k: r[k] for k in ("seconds", "peak_rss_mib", "roi_share")} for n, r in large.items()}},
        args.results)
    write_json_atomic(args.out / "cascade_meta.json", {
        "date": str(datetime.date.today()), "seed": args.seed, "iterations": iterations, "budget": args.budget,
        "margin_mm": MARGIN_MM, "device": args.device, "total_s": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
