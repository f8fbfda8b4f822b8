"""The demo's training step as `unimos train` runs it, before and after this layout/loss work, side by side.

Two settings of the same loop (`training.loop.train`, method `partial`, the demo's `3mm-small` plan: DynUNet 16-128
with deep supervision, batch 2 of 48^3 patches, augmentation on, default precision), alternated round by round so
that a drift of the machine affects both:
- `standard`: MONAI's layout (InstanceNorm, standard-order weights) and the partial cross-entropy computed on the
  gathered (N, C) voxels with two log-sum-exps, as unimos ran until 2026-12-05;
- `unimos`: what unimos runs now: channels-last 3D convolutions with layout-keeping instance norms
  (networks/layout.py) and the dense partial cross-entropy (losses/cross_entropy.py).
Both rows share the rest of the loop, including the merged Dice's skipping of the zeroing pass on a full region.
The step time is the loop's own (log.csv `seconds`: batch, augmentation, forward, loss, backward, optimiser), the
median over the steps of every round after the first few.

    .venv/bin/python bench/train_step.py                # about 3 minutes on 2 cores
    .venv/bin/python bench/train_step.py --rounds 5 --steps 40

Writes bench/results/train_step.md and the `train_step` entry of bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from _common import RESULTS, machine_line, merge_summary

import unimos.losses.baselines as baselines
import unimos.losses.compound as compound
import unimos.networks.dynunet as dynunet
from unimos.losses.base import zero_with_graph
from unimos.losses.cross_entropy import candidate_log_prob
from unimos.losses.targets import Targets
from unimos.phantoms import make_demo_data
from unimos.pipelines.project import checked_manifest, plan_manifest
from unimos.pipelines.run import train_from_cache
from unimos.preprocess.cache import preprocess_manifest
from unimos.training.config import TrainConfig
from unimos.utils.atomic import write_text_atomic

WARM_STEPS = 5
THREADS = 2


def gathered_partial_cross_entropy(logits: torch.Tensor, targets: Targets, *, gamma: float = 0.0,
                                   voxel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The partial CE as computed until 2026-12-05: scored voxels gathered to (N, C), two log-sum-exps."""
    scored = targets.region if voxel_mask is None else targets.region & voxel_mask
    batch_index = torch.arange(logits.shape[0]).view(-1, *([1] * (logits.ndim - 2))).expand_as(scored)[scored]
    voxel_logits = logits.movedim(1, -1)[scored]
    if voxel_logits.shape[0] == 0:
        return zero_with_graph(logits)
    log_prob = candidate_log_prob(voxel_logits, targets.tables[batch_index, targets.labels[scored]], dim=-1)
    focal = (-torch.expm1(log_prob)).clamp(min=0.0).pow(gamma) if gamma else 1.0
    return -(focal * log_prob).mean()


@contextmanager
def standard_setting() -> Iterator[None]:
    """Build networks in MONAI's layout and compute the CE the gathered way, for the `standard` rows only."""
    saved = (dynunet.channels_last, dynunet.layout_keeping_norms, compound.partial_cross_entropy,
             baselines.partial_cross_entropy)
    dynunet.channels_last = lambda module, _dims: module
    dynunet.layout_keeping_norms = lambda module: module
    compound.partial_cross_entropy = baselines.partial_cross_entropy = gathered_partial_cross_entropy
    try:
        yield
    finally:
        (dynunet.channels_last, dynunet.layout_keeping_norms, compound.partial_cross_entropy,
         baselines.partial_cross_entropy) = saved


def step_seconds(run_dir: Path) -> list[float]:
    """Per-step seconds from a run's log.csv (logged every step), warm-up steps left out."""
    with open(run_dir / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [float(r["seconds"]) for r in rows if int(r["step"]) > WARM_STEPS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each training both settings once")
    parser.add_argument("--steps", type=int, default=30, help="training steps per setting and round")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the Markdown table and summary.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="unimos_train_step_") as tmp:
        work = Path(tmp)
        manifest, _report = checked_manifest(make_demo_data(work / "data", seed=0, quick=True))
        plan = plan_manifest(manifest, work / "plan.json", "3mm-small")
        preprocess_manifest(manifest, plan, work / "cache")
        config = TrainConfig(method="partial", iterations=args.steps, seed=0, checkpoint_every=0, log_every=1,
                             deep_supervision=True)
        times: dict[str, list[float]] = {"standard": [], "unimos": []}
        for round_index in range(args.rounds):
            for setting in times:
                run_dir = work / f"{setting}_{round_index}"
                if setting == "standard":
                    with standard_setting():
                        train_from_cache(work / "cache", plan, config, run_dir)
                else:
                    train_from_cache(work / "cache", plan, config, run_dir)
                times[setting].extend(step_seconds(run_dir))
    medians = {setting: statistics.median(values) for setting, values in times.items()}
    speedup = medians["standard"] / medians["unimos"]
    text = "\n".join([
        f"Demo training step (`3mm-small` DynUNet 16-128, deep supervision, batch 2 x 48^3, method partial, "
        f"augmentation on), {machine_line()}, torch {torch.__version__} at {THREADS} threads; median of "
        f"{len(times['unimos'])} steps per setting over {args.rounds} alternating rounds (first {WARM_STEPS} steps "
        f"of each round left out).", "",
        "| setting | seconds per step | speed-up |", "|---|---:|---:|",
        f"| standard (MONAI layout, gathered CE) | {medians['standard']:.3f} | 1.00x |",
        f"| unimos (channels-last + layout-keeping norms, dense CE) | {medians['unimos']:.3f} | {speedup:.2f}x |",
    ]) + "\n"
    print(text)
    write_text_atomic(args.results / "train_step.md", text)
    merge_summary("train_step", {"seconds_per_step": medians, "speedup": speedup, "steps": len(times["unimos"]),
                                 "rounds": args.rounds}, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
