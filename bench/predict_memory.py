"""Peak memory (and time) of `unimos predict` on one large CT, 512 x 512 x 400 by default, with the 3 mm plan.

The scan is synthetic (a body of soft tissue with organs of other densities and noise, int16 HU); the model is an
untrained network of the full `3mm` plan (memory does not depend on the weights). The prediction runs in its own
process, so the peak RSS is what a user sees; unimos measures it (VmHWM) and writes it to predict_log.json.

    .venv/bin/python bench/predict_memory.py [--shape 512 512 400] [--spacing 0.8 0.8 1.0] [--out /tmp/predict-memory]

Goal (reliability issue): peak RSS under 3 GiB. Prints a Markdown table; writes it to bench/results/predict_memory.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

GOAL_GIB = 3.0


def synthetic_ct(shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int = 0) -> nib.Nifti1Image:
    """Air around an elliptic body (40 HU) holding a liver-like (60 HU) and a kidney-like (150 HU) ellipsoid."""
    rng = np.random.default_rng(seed)
    x = (np.arange(shape[0]) - shape[0] / 2)[:, None] / (0.42 * shape[0])
    y = (np.arange(shape[1]) - shape[1] / 2)[None, :] / (0.32 * shape[1])
    body = (x ** 2 + y ** 2) < 1.0
    image = np.full(shape, -1000, dtype=np.int16)
    for k in range(shape[2]):  # slice by slice keeps this generator's own memory small
        plane = np.where(body, 40, -1000).astype(np.int16)
        if 0.3 * shape[2] < k < 0.7 * shape[2]:
            plane[((x + 0.3) ** 2 + (y + 0.1) ** 2 < 0.12)] = 60
            plane[((x - 0.45) ** 2 + (y - 0.2) ** 2 < 0.02)] = 150
        image[:, :, k] = plane + rng.integers(-15, 16, size=plane.shape, dtype=np.int16) * body
    return nib.Nifti1Image(image, np.diag([*spacing, 1.0]))


def untrained_checkpoint(path: Path, spacing: tuple[float, float, float], extent_mm: list[float]) -> Path:
    """A checkpoint of the full 3 mm plan for the abdominal taxonomy, with freshly initialised weights."""
    import torch

    from unimos.data.taxonomy import abdominal_taxonomy
    from unimos.networks.checkpoint import save_checkpoint
    from unimos.networks.registry import build_network, network_config_for
    from unimos.preprocess.plan import make_plan

    fingerprint = {"median_spacing_mm": list(spacing), "spacing_percentile_10_mm": list(spacing),
                   "median_extent_mm": extent_mm,
                   "modalities": {"CT": {"percentile_00_5": -200.0, "percentile_99_5": 300.0, "mean": 60.0,
                                         "std": 70.0}}}
    plan = make_plan(fingerprint, abdominal_taxonomy(), "3mm")
    config = network_config_for(plan, "dynunet")
    network = build_network(config, 1, len(plan.classes) + 1)
    record = plan.model_record()
    meta = {"step": 0, "plan_hash": plan.hash, "classes": record["classes"], "in_channels": 1,
            "network": {**config, "deep_supervision": False}, "patch_size": plan.patch_size, "plan": record,
            "strategy": "supervised", "method": "partial"}
    torch.manual_seed(0)
    return save_checkpoint(path, torch.nn.ModuleDict({"main": network}), meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 400])
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/predict-memory"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    shape, spacing = tuple(args.shape), tuple(args.spacing)
    scan = args.out / "input" / "large_ct.nii.gz"
    scan.parent.mkdir(exist_ok=True)
    nib.save(synthetic_ct(shape, spacing), str(scan))
    extent = [s * n for s, n in zip(spacing, shape)]
    checkpoint = untrained_checkpoint(args.out / "model" / "checkpoint_untrained", spacing, extent)
    begun = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "unimos.cli.main", "predict", str(checkpoint), str(scan),
                           "--out", str(args.out / "pred")], capture_output=True, text=True)
    wall = time.perf_counter() - begun
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr)
        return 1
    record = json.loads((args.out / "pred" / "predict_log.json").read_text())[0]
    peak_gib = record["peak_rss_mib"] / 1024
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in record["stages"].items())
    table = "\n".join([
        f"`unimos predict` of one {shape[0]}x{shape[1]}x{shape[2]} CT ({spacing} mm), full `3mm` plan, "
        f"{datetime.date.today()}, {platform.machine()} CPU",
        "", "| input voxels | peak RSS (GiB) | goal (GiB) | case seconds | process wall seconds | stages |",
        "|---:|---:|---:|---:|---:|---|",
        f"| {np.prod(shape):,} | {peak_gib:.2f} | < {GOAL_GIB} | {record['seconds']:.1f} | {wall:.1f} | {stages} |"])
    print(table)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "predict_memory.md").write_text(table + "\n")
    return 0 if peak_gib < GOAL_GIB else 2


if __name__ == "__main__":
    sys.exit(main())
