"""How much a faster way of running a trained model changes its labels: agreement with float32 sliding windows.

For each `--set NAME CHECKPOINT MANIFEST`, every labeled case of the manifest's `--split` is predicted with each
inference mode below; each mode's labels are compared with the reference mode's (the plan's patch, overlap 0.5,
Gaussian, float32: what `unimos predict --window patch --precision float32` does) as the mean Dice over the classes
either label map holds (the agreement), and scored against the references (`unimos evaluate`: mean organ DSC).

    .venv/bin/python bench/inference_agreement.py --out /tmp/agree \\
        --set demo /tmp/demo/runs/partial/checkpoint_final /tmp/demo/data/manifest_complete.yaml \\
        --set btcv /tmp/btcv/runs/partial/checkpoint_final /tmp/btcv/manifests/partial.yaml

Modes:
    patch_float32   the reference (plan patch, overlap 0.5, float32)
    default         `unimos predict` with its defaults on this machine (precision auto: bfloat16 where native)
    patch_overlap25 the plan patch at overlap 0.25 (MONAI's default): fewer windows on some shapes
    patch_overlap75 the plan patch at overlap 0.75: how far two tilings of the same model differ at all
    auto            `--window auto`: the fewest, largest windows (up to the whole volume) in the memory budget
    auto_patch_stats `auto` with every instance norm using the statistics of a box of the training patch's extent
                    around each voxel instead of the window's (a candidate for making `auto` accurate; experiment,
                    not a unimos option)

Writes OUT/agreement.json, bench/results/inference_agreement.md and the `inference_agreement` entry of
bench/results/summary.json. Use a development split to choose between modes, and report on held-out cases.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import RESULTS, machine_line, merge_summary
from torch import nn

from unimos.data.io import read_volume
from unimos.evaluation.evaluate import evaluate_predictions
from unimos.inference.model import load_model
from unimos.inference.predictor import PredictOptions, predict_files
from unimos.pipelines.project import checked_manifest
from unimos.pipelines.run import images_by_modality
from unimos.training.validate import dice_per_class
from unimos.utils.atomic import write_text_atomic

REFERENCE = "patch_float32"
MODES: dict[str, tuple[dict[str, Any], bool]] = {  # mode -> (PredictOptions fields, patch statistics)
    REFERENCE: ({"precision": "float32"}, False),
    "default": ({}, False),
    "patch_overlap25": ({"precision": "float32", "overlap": 0.25}, False),
    "patch_overlap75": ({"precision": "float32", "overlap": 0.75}, False),
    "auto": ({"precision": "float32", "window": "auto"}, False),
    "auto_patch_stats": ({"precision": "float32", "window": "auto"}, True),
}


def box_mean(x: torch.Tensor, box: Sequence[int]) -> torch.Tensor:
    """Mean of `x` (N, C, *spatial) over a box of `box` voxels around each voxel, shifted inside the array at the
    borders as a sliding window is; an axis no longer than its box is averaged whole (kept as size 1)."""
    out = x
    for axis, size in enumerate(box, start=2):
        length = out.shape[axis]
        if size >= length:
            out = out.mean(dim=axis, keepdim=True)
            continue
        running = torch.cat([torch.zeros_like(out.narrow(axis, 0, 1)), out.cumsum(dim=axis)], dim=axis)
        sums = running.narrow(axis, size, length - size + 1) - running.narrow(axis, 0, length - size + 1)
        starts = (torch.arange(length, device=x.device) - size // 2).clamp(0, length - size)
        out = sums.index_select(axis, starts) / size
    return out


@contextlib.contextmanager
def patch_statistics(network: nn.Module, patch: Sequence[int]) -> Iterator[None]:
    """Within the block every instance norm of `network` normalises each voxel by the mean and variance over a box
    of the training patch's extent (scaled to the norm's resolution) around it; an input of the patch's size is
    normalised exactly as before."""
    seen: dict[str, tuple[int, ...]] = {}

    def remember_input(_module: nn.Module, args: tuple) -> None:
        seen["input"] = tuple(args[0].shape[2:])

    def local_forward(norm: nn.Module):
        def forward(x: torch.Tensor) -> torch.Tensor:
            box = [max(1, round(p * n / m)) for p, n, m in zip(patch, x.shape[2:], seen["input"])]
            values = x.float()
            mean = box_mean(values, box)
            variance = (box_mean(values * values, box) - mean * mean).clamp_min(0.0)
            shape = (1, -1) + (1,) * (x.dim() - 2)
            out = (values - mean) * torch.rsqrt(variance + norm.eps)
            return (out * norm.weight.view(shape) + norm.bias.view(shape)).to(x.dtype)
        return forward

    norms = [m for m in network.modules() if isinstance(m, (nn.InstanceNorm2d, nn.InstanceNorm3d))]
    handle = network.register_forward_pre_hook(remember_input)
    try:
        for norm in norms:
            norm.forward = local_forward(norm)
        yield
    finally:
        handle.remove()
        for norm in norms:
            del norm.forward


def mean_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the labels > 0 that either map holds (1.0 for two empty maps)."""
    classes = [int(c) for c in np.union1d(np.unique(a), np.unique(b)) if c > 0]
    if not classes:
        return 1.0
    return float(np.mean(list(dice_per_class(a, b, np.ones(a.shape, dtype=bool), classes).values())))


def run_set(name: str, checkpoint: Path, manifest_path: Path, split: str, out: Path) -> dict[str, Any]:
    """Every mode on one model and its cases: seconds, window count, mean DSC and agreement with the reference."""
    manifest, _problems = checked_manifest(manifest_path)
    model = load_model(checkpoint)
    patch = model.meta.get("patch_size", model.plan.patch_size)
    organs = [n for i, n in enumerate(manifest.taxonomy.names) if i and not manifest.taxonomy.parents_of(i)]
    rows: dict[str, Any] = {}
    for mode, (fields, local) in MODES.items():
        pred_dir = out / name / "predictions" / mode
        seconds, windows = 0.0, []
        for modality, images in images_by_modality(manifest, split).items():
            options = PredictOptions(modality=modality, **fields)
            with patch_statistics(model.network, patch) if local else contextlib.nullcontext():
                records = predict_files(model, images, pred_dir, options, overwrite=True)
            failed = [r.error for r in records if r.error]
            if failed:
                raise SystemExit(f"error: {name} {mode}: {failed[0]}")
            seconds += sum(r.stages.get("network", 0.0) for r in records)
            windows += [r.window.get("count", 0) for r in records]
        evaluate_predictions(pred_dir, manifest, out / name / "evaluation" / mode, split=split)
        summary = json.loads((out / name / "evaluation" / mode / "summary.json").read_text())
        per = summary["per_structure"]
        present = [o for o in organs if o in per and per[o].get("dsc") is not None]
        rows[mode] = {"network_s": round(seconds, 2), "windows": windows, "precision": records[0].window.get(
            "precision"), "organ_mean_dsc": float(np.mean([per[o]["dsc"] for o in present]))}
    reference = out / name / "predictions" / REFERENCE
    for mode in MODES:
        agreements = [mean_dice(np.asarray(read_volume(path).array),
                                np.asarray(read_volume(out / name / "predictions" / mode / path.name).array))
                      for path in sorted(reference.glob("*.nii.gz"))]
        rows[mode]["agreement"] = float(np.mean(agreements))
        rows[mode]["agreement_min_case"] = float(np.min(agreements))
        rows[mode]["dsc_change"] = rows[mode]["organ_mean_dsc"] - rows[REFERENCE]["organ_mean_dsc"]
    return {"checkpoint": str(checkpoint), "manifest": str(manifest_path), "split": split,
            "cases": len(list(reference.glob("*.nii.gz"))), "patch": list(patch), "modes": rows}


def markdown(sets: dict[str, Any], header: str) -> str:
    lines = [header, "", "| set | mode | precision | windows per case | network s (all cases) | organ mean DSC | "
             "DSC change vs reference | agreement with reference (mean Dice) | lowest case agreement |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for name, entry in sets.items():
        for mode, row in entry["modes"].items():
            counts = sorted(set(row["windows"]))
            lines.append(f"| {name} ({entry['cases']} cases, patch {entry['patch']}) | {mode} | {row['precision']} | "
                         f"{counts[0] if len(counts) == 1 else f'{counts[0]}-{counts[-1]}'} | "
                         f"{row['network_s']:.1f} | {row['organ_mean_dsc']:.4f} | {row['dsc_change']:+.4f} | "
                         f"{row['agreement']:.4f} | {row['agreement_min_case']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", nargs=3, action="append", required=True, metavar=("NAME", "CHECKPOINT", "MANIFEST"),
                        help="a model and the manifest whose --split cases it is scored on (repeatable)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--summary-key", default="inference_agreement")
    args = parser.parse_args(argv)
    sets = {}
    for name, checkpoint, manifest in args.set:
        clock = time.perf_counter()
        sets[name] = run_set(name, Path(checkpoint), Path(manifest), args.split, args.out)
        print(f"{name}: done in {time.perf_counter() - clock:.0f} s", flush=True)
    header = (f"Inference modes against float32 sliding windows (`bench/inference_agreement.py`), {machine_line()}; "
              f"split `{args.split}`; organ mean DSC over the organs (no lesions) the cases hold; agreement = mean "
              f"Dice over the classes either label map holds, averaged over cases.")
    table = markdown(sets, header)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agreement.json").write_text(json.dumps(sets, indent=2))
    write_text_atomic(args.results / f"{args.summary_key}.md", table + "\n")
    merge_summary(args.summary_key, {
        "machine": machine_line(), "split": args.split,
        "default_agreement_lowest_set": min(s["modes"]["default"]["agreement"] for s in sets.values()),
        "sets": {name: {mode: {k: v for k, v in row.items() if k != "windows"}
                        for mode, row in entry["modes"].items()} for name, entry in sets.items()}},
        args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
