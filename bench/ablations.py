"""Ablations on the demo data (paper 002): patch sampling order, the entropy term, and the axis of sparse labels.

    .venv/bin/python bench/ablations.py --out /tmp/ablations                 # 7 rows, ~5 min each on 2 CPU cores
    .venv/bin/python bench/ablations.py --out /tmp/ablations --rows sampler_cmd sampler_random --budget 0.5

Rows (one plan, network, iteration count and seed; scored on the demo's held-out `test` cases, every organ):
- `sampler_cmd`, `sampler_mdc`, `sampler_random`: the whole demo collection with the `partial` loss, patches drawn
  class -> modality -> dataset -> case (paper 002, the default), modality -> dataset -> class, or uniformly
  over cases. `sampler_cmd` is also the reference of the two other groups.
- `entropy`: as `sampler_cmd` plus paper 002's entropy term (eq. 5, weight 1; patches without annotation weigh 3).
- `sparse_axial`, `sparse_sagittal`, `sparse_coronal`: the fully labeled source plus the sparse source, whose
  labels are re-derived from the generator's complete labels keeping one slice every 15 mm along one voxel axis
  of the file (axis 2 axial, 0 sagittal, 1 coronal; the step in slices follows each axis's spacing, so every row
  annotates the same share of the volume; offset seeded per case, derived files under OUT/data), `partial` loss;
  only the axis differs, so the rows show which slicing direction teaches the 3D model most. The table states
  the share of the sparse source's voxels that were annotated after resampling to the plan, per row.

"Small organs" are the three organs with the smallest mean volume in the test labels (measured, not assumed).
Writes OUT/ablations_results.json, OUT/runs/ROW, bench/results/ablations.md and the `ablations` entry
({row: mean DSC}) of bench/results/summary.json. --resume reuses rows already scored in OUT.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, earlier_results, machine_line, merge_summary, organ_markdown, pending_rows, run_row

from unimos.utils.atomic import write_json_atomic, write_text_atomic

DEFAULT_ITERATIONS = 700
"""The demo's default budget per method (`unimos demo`), so the reference row equals the demo's partial row."""
SPARSE_MM = 15.0
"""Distance between annotated slices: the demo's own sparse source keeps every 5th axial slice of ~3 mm."""
AXES = {"axial": 2, "sagittal": 0, "coronal": 1}
ROWS = ("sampler_cmd", "sampler_mdc", "sampler_random", "entropy", "sparse_axial", "sparse_sagittal",
        "sparse_coronal")
SPARSE_SOURCES = ("btcv_like", "ct_sparse", "ct_test")


def slice_step(spacing_mm: float, every_mm: float = SPARSE_MM) -> int:
    """Slices between two annotated ones so that they lie about `every_mm` apart (at least 1)."""
    return max(1, round(every_mm / spacing_mm))


def sparse_label(complete: Path, axis: int, offset_seed: int, out: Path) -> list[int]:
    """Write `complete` keeping one slice every SPARSE_MM along `axis` (first one drawn from `offset_seed`); return
    the kept slices. The complete file is only read; the derived one has the same grid and header."""
    import nibabel as nib
    import numpy as np

    from unimos.utils.atomic import atomic_path

    image = nib.load(str(complete))
    array = np.asanyarray(image.dataobj)
    step = slice_step(float(image.header.get_zooms()[axis]))
    slices = list(range(offset_seed % step, array.shape[axis], step))
    keep = np.zeros(array.shape[axis], dtype=bool)
    keep[slices] = True
    shape = [1, 1, 1]
    shape[axis] = -1
    derived = np.where(keep.reshape(shape), array, 0).astype(array.dtype)
    with atomic_path(out) as tmp:
        nib.save(nib.Nifti1Image(derived, image.affine, image.header), str(tmp))
    return slices


def write_sparse_manifests(data: Path, seed: int) -> dict[str, Path]:
    """One manifest per axis in `data` (the demo folder): btcv_like and ct_test with their complete labels, ct_sparse
    re-sliced from its complete label (the sources as manifest_complete.yaml declares them, every class)."""
    import numpy as np
    import yaml

    complete = yaml.safe_load((data / "manifest_complete.yaml").read_text())
    complete_label = {c["id"]: c["label"] for s in complete["sources"] for c in s["cases"]}
    rng = np.random.default_rng(seed)
    paths = {}
    for name, axis in AXES.items():
        doc = copy.deepcopy(complete)
        doc["sources"] = [s for s in doc["sources"] if s["name"] in SPARSE_SOURCES]
        for source in doc["sources"]:
            if source["name"] != "ct_sparse":
                continue
            source["kind"] = "sparse"
            for case in source["cases"]:
                rel = f"labels_sparse_{name}/{case['id']}.nii.gz"
                offset = int(rng.integers(0, 1 << 16))
                case["label"] = rel
                case["annotated_slices"] = {axis: sparse_label(data / complete_label[case["id"]], axis, offset,
                                                               data / rel)}
        paths[f"sparse_{name}"] = write_text_atomic(
            data / f"manifest_sparse_{name}.yaml",
            f"# demo ablation: sparse source sliced along the {name} axis (voxel axis {axis}), bench/ablations.py\n"
            + yaml.safe_dump(doc, sort_keys=False))
    return paths


def annotated_share(cache: Path, source: str) -> float:
    """Mean share of voxels inside the annotated region, over the cached (resampled) cases of `source`."""
    import numpy as np

    shares = [float(np.load(p, mmap_mode="r").mean()) for p in sorted(cache.glob(f"*/{source}_*/region.npy"))]
    return float(np.mean(shares)) if shares else float("nan")


def row_config(row: str) -> dict[str, Any]:
    """The TrainConfig fields that make a row what it is (everything else is shared)."""
    if row.startswith("sampler_"):
        return {"sampler": row.removeprefix("sampler_")}
    if row == "entropy":
        return {"sampler": "cmd", "entropy_weight": 1.0}
    return {"sampler": "cmd"}


def smallest_organs(manifest: Any, organs: list[str], count: int = 3) -> list[str]:
    """The `count` organs with the smallest mean voxel volume (mm^3) over the manifest's test labels."""
    import nibabel as nib
    import numpy as np

    volumes = {o: [] for o in organs}
    for case in manifest.split("test"):
        image = nib.load(str(case.label_path))
        labels = np.asanyarray(image.dataobj)
        voxel = float(abs(np.linalg.det(image.affine[:3, :3])))
        counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(organs) + 1)
        for index, organ in enumerate(organs, start=1):
            volumes[organ].append(counts[index] * voxel)
    return sorted(organs, key=lambda o: float(np.mean(volumes[o])))[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder (or an earlier one with --resume)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--budget", type=float, default=1.0,
                        help=f"scales the iterations per row (1.0 = {DEFAULT_ITERATIONS}, the demo's)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo data, the sparse offsets and training")
    parser.add_argument("--resume", action="store_true", help="reuse rows already scored in OUT")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from unimos.phantoms import make_demo_data
    from unimos.pipelines.demo import ensure_empty_output
    from unimos.pipelines.project import checked_manifest, plan_manifest
    from unimos.training.config import TrainConfig

    data = args.out / "data"
    if not args.resume:
        ensure_empty_output(args.out)
    started = time.perf_counter()
    if not (data / "manifest.yaml").exists():
        make_demo_data(data, seed=args.seed)
    paths = {"demo": data / "manifest.yaml", **write_sparse_manifests(data, args.seed)}
    manifests = {name: checked_manifest(path)[0] for name, path in paths.items()}
    plan = plan_manifest(manifests["demo"], args.out / "plan.json", "3mm-small", seed=args.seed)
    organs = list(manifests["demo"].taxonomy.names[1:])
    small = smallest_organs(manifests["demo"], organs)
    means = {"mean": organs, "small": small}
    iterations = max(1, round(DEFAULT_ITERATIONS * args.budget))
    results_path = args.out / "ablations_results.json"
    results = earlier_results(results_path, args.resume)
    for row in pending_rows(ROWS, args.rows, results, results_path):
        collection = row if row.startswith("sparse_") else "demo"
        config = TrainConfig(method="partial", iterations=iterations, seed=args.seed, device=args.device,
                             checkpoint_every=0, deep_supervision=True, **row_config(row))
        results[row] = {**run_row(row, manifests[collection], plan, args.out, config, organs, means),
                        "collection": collection, "config": row_config(row)}
        if row.startswith("sparse_"):
            results[row]["annotated_share"] = annotated_share(args.out / "cache" / paths[row].stem, "ct_sparse")
        write_json_atomic(results_path, results)
        print(f"{row}: mean DSC {results[row]['table']['mean']['dsc']:.3f}, small organs "
              f"{results[row]['table']['small']['dsc']:.3f} ({results[row]['train_s'] / 60:.1f} min training)",
              flush=True)

    tables = {row: v["table"] for row, v in results.items()}
    header = (f"Demo ablations (paper 002), {machine_line()} (device {args.device}); demo data seed {args.seed}, "
              f"plan `3mm-small`, patch {plan.patch_size}, batch {plan.batch_size}, DynUNet with deep "
              f"supervision, `partial` loss, {iterations} iterations per row (budget {args.budget}); training minutes "
              "per row: " + ", ".join(f"{r} {v['train_s'] / 60:.1f}" for r, v in results.items())
              + f". Sampler and entropy rows train on the whole demo collection, sparse rows on {SPARSE_SOURCES[0]} "
              f"+ {SPARSE_SOURCES[1]} (one slice every {SPARSE_MM:g} mm along the named axis; annotated share of the "
              "sparse voxels after resampling: " + ", ".join(f"{r} {v['annotated_share']:.2f}" for r, v in
                                                            results.items() if "annotated_share" in v)
              + "). Scored on the "
              f"{len(manifests['demo'].split('test'))} test cases. Small organs (smallest mean test volume): "
              + ", ".join(small) + ".")
    table = organ_markdown(tables, organs, {"mean": "mean (all organs)", "small": "mean (small organs)"}, header)
    print(table)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "ablations.md", table)
    merge_summary("ablations", {row: t["mean"]["dsc"] for row, t in tables.items()}, args.results)
    write_json_atomic(args.out / "ablations_meta.json", {
        "date": str(datetime.date.today()), "seed": args.seed, "iterations_per_row": iterations,
        "budget": args.budget, "plan_hash": plan.hash, "small_organs": small, "device": args.device,
        "total_s": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
