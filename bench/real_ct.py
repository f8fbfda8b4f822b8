"""A demo-trained model on real abdominal CT: `unimos predict` on the TotalSegmentator example CT (NIfTI) and on the
real DICOM series; wall time, peak RSS, where the time goes, and that the output's geometry equals the input's.

    .venv/bin/python -m unimos.cli.main demo --out /tmp/demo                  # trains the model (~15 min)
    .venv/bin/python bench/real_ct.py --checkpoint /tmp/demo/runs/partial/checkpoint_final --out /tmp/real_ct

The demo model learned from synthetic phantoms, so its labels on real CT are not an accuracy figure (the data
folder holds no manual labels for these scans; its TotalSegmentator outputs are model outputs): the table reports
speed, memory, geometry and the volume of each organ found, as a plausibility check only. Each input runs in a
fresh `unimos predict` process with torch at 2 threads (peak RSS = ru_maxrss of that process tree).
Writes bench/results/real_ct.md and the `real_ct` entry of bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS, SHARED_DATA, machine_line, merge_summary
from inference_peers import child_env, run_process

from unimos.utils.atomic import write_text_atomic

INPUTS = {"nifti_example_ct": ("totalseg", "example_ct.nii.gz"), "dicom_series": ("dicom_ct", "series")}


def same_geometry(output: Path, source: Path, atol_mm: float = 1e-3) -> tuple[bool, str]:
    """(equal?, description): the label map's shape and RAS affine against the input's (a DICOM folder included)."""
    import numpy as np

    from unimos.data.io import read_geometry

    (out_shape, out_affine), (in_shape, in_affine) = read_geometry(output), read_geometry(source)
    if tuple(out_shape) != tuple(in_shape):
        return False, f"shape {tuple(out_shape)} vs input {tuple(in_shape)}"
    worst = float(np.abs(out_affine - in_affine).max())
    return worst <= atol_mm, f"shape {tuple(in_shape)}, affine max difference {worst:.2g} mm"


def organ_volumes_ml(labels: Path, names: dict[str, str]) -> dict[str, float]:
    """Volume of each predicted label in millilitres (plausibility only, not accuracy)."""
    import nibabel as nib
    import numpy as np

    image = nib.load(str(labels))
    counts = np.bincount(np.asanyarray(image.dataobj).ravel().astype(np.int64), minlength=len(names))
    voxel_ml = float(abs(np.linalg.det(image.affine[:3, :3]))) / 1000.0
    return {names[str(i)]: round(float(counts[i]) * voxel_ml, 1) for i in range(1, len(names))}


def measure(checkpoint: Path, source: Path, work: Path, repeats: int) -> dict[str, Any]:
    """Run `unimos predict` `repeats` times in fresh processes; medians of case seconds, wall and peak RSS."""
    runs = []
    for repeat in range(repeats):
        out = work / "pred"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "unimos.cli.main", "predict", str(checkpoint), str(source), "--out", str(out),
               "--modality", "CT"]
        wall, peak, code = run_process(cmd, child_env(work), work / f"log_{repeat}.txt")
        if code != 0:
            raise SystemExit(f"unimos predict failed on {source}; see {work / f'log_{repeat}.txt'}")
        record = json.loads((out / "predict_log.json").read_text())[0]
        if record["error"]:
            raise SystemExit(f"unimos predict on {source}: {record['error']}")
        runs.append((record, wall, peak))
    record = runs[-1][0]
    output = Path(record["output"])
    equal, geometry = same_geometry(output, source)
    names = json.loads((output.parent / "labels.json").read_text())
    return {"seconds": statistics.median(r["seconds"] for r, _w, _p in runs),
            "process_wall_s": statistics.median(w for _r, w, _p in runs),
            "peak_rss_mib": statistics.median(p for _r, _w, p in runs),
            "stages": {k: statistics.median(r["stages"][k] for r, _w, _p in runs) for k in record["stages"]},
            "geometry_equal": equal, "geometry": geometry, "organ_volumes_ml": organ_volumes_ml(output, names)}


def markdown(results: dict[str, dict[str, Any]], checkpoint: Path, repeats: int) -> str:
    lines = [f"Demo-trained model on real CT, {machine_line()}, torch 2 threads; checkpoint `{checkpoint}`; "
             f"median of {repeats} run(s), each a fresh `unimos predict` process. Organ volumes are a plausibility "
             "check, not accuracy (no manual labels for these scans).", "",
             "| input | case s | process wall s | peak RSS MiB | stages (s) | output geometry = input |",
             "|---|---|---|---|---|---|"]
    for name, row in results.items():
        stages = ", ".join(f"{k} {v:.2f}" for k, v in row["stages"].items())
        lines.append(f"| {name} | {row['seconds']:.1f} | {row['process_wall_s']:.1f} | {row['peak_rss_mib']:.0f} | "
                     f"{stages} | {'yes' if row['geometry_equal'] else 'NO'} ({row['geometry']}) |")
    organs = list(next(iter(results.values()))["organ_volumes_ml"])
    lines += ["", "| organ volume (mL) | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for organ in organs:
        lines.append(f"| {organ} | " + " | ".join(f"{r['organ_volumes_ml'][organ]:.1f}" for r in results.values())
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a demo-trained checkpoint, e.g. OUT/runs/partial/checkpoint_final of `unimos demo`")
    parser.add_argument("--out", type=Path, required=True, help="working folder for the predictions and logs")
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not Path(f"{args.checkpoint}.json").exists() and not (args.checkpoint / "checkpoint_final.json").exists():
        print(f"error: {args.checkpoint}: no checkpoint here (expected {args.checkpoint}.json). Fix: run "
              "`unimos demo --out D` and give D/runs/partial/checkpoint_final", file=sys.stderr)
        return 2
    results = {}
    for name, (folder, item) in INPUTS.items():
        source = args.data / folder / item
        results[name] = measure(args.checkpoint, source, args.out / name, args.repeats)
        print(f"{name}: {results[name]['seconds']:.1f} s, peak {results[name]['peak_rss_mib']:.0f} MiB, geometry "
              f"{'equal' if results[name]['geometry_equal'] else 'DIFFERENT'}", flush=True)
    table = markdown(results, args.checkpoint, args.repeats)
    print(table)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "real_ct.md", table)
    merge_summary("real_ct", {n: {k: r[k] for k in ("seconds", "peak_rss_mib", "geometry_equal")}
                              for n, r in results.items()}, args.results)
    return 0 if all(r["geometry_equal"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
