"""Training throughput: unimos's patch loader against a MONAI `Compose` pipeline of the equivalent transforms.

Both loaders feed the same network and optimiser step (the `3mm-small` plan's DynUNet as unimos builds it, deep
supervision on as in the demo, the partial loss, AdamW with the poly schedule, gradient clipping at 12: the body of
`unimos.training.loop.train`). Per step the script times how long it is blocked waiting for the next batch (the
batch made and moved to the device) against the whole step; steps per second is 1 / mean step time. A "data only"
column times the loader alone (no network): its raw speed.

Inputs, the same for both: the built-in demo data (`make_demo_data`), planned with `3mm-small` and preprocessed into
the unimos cache under OUT; only the labeled training cases are used (unimos trains on these). unimos cuts its
patches from the memory-mapped cache (its design); MONAI reads the same cached `.npy` arrays, already at 3 mm, so
it does not resample either. unimos makes its batches in the training process itself (no worker process, no
thread), so the fair MONAI row has 0 workers too; a row with 2 worker processes is added.

Goals (training-throughput issue): data wait < 10% of the step time; unimos >= 2x the steps per second of the MONAI
pipeline with the same workers. Writes bench/results/throughput.md and the `throughput` entry of
bench/results/summary.json (or of --results).

    .venv/bin/python bench/throughput.py --out /tmp/throughput                   # full measurement
    .venv/bin/python bench/throughput.py --out /tmp/throughput_q --quick --results /tmp/throughput_q/results
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from _common import RESULTS, machine_line, merge_summary

from unimos.augment.transforms import AugmentConfig
from unimos.data.plan_spec import Plan
from unimos.preprocess.cache import CachedCase
from unimos.training.config import TrainConfig
from unimos.utils.atomic import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from unimos.training.batches import PatchSource

Batch = dict[str, torch.Tensor]
KEYS = ("image", "label", "region")
"""What both loaders move together: the image and, aligned with it, the label and the annotated region."""
SETTINGS = {"full": {"warmup": 5, "steps": 30, "data_batches": 30},
            "quick": {"warmup": 1, "steps": 3, "data_batches": 3}}


# ----------------------------------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    """The preprocessed demo data both loaders read, and the plan that made it."""

    plan: Plan
    cases: list[CachedCase]
    label_values: int
    """Rows of the candidate tables: label values run 0 .. label_values - 1."""


def prepare_inputs(out: Path, quick: bool, seed: int, workers: int) -> Inputs:
    """Demo data -> `3mm-small` plan -> unimos cache under `out`; stages already done there are reused.

    Args:
        out: working folder (OUT/data, OUT/plan_3mm-small.json, OUT/cache).
        quick: the quick demo collection (about half the cases, coarser scans).
        seed: demo data and plan seed.
        workers: preprocessing processes.
    """
    from unimos.data.manifest import load_manifest
    from unimos.errors import OutputError
    from unimos.phantoms import make_demo_data
    from unimos.pipelines.project import plan_manifest
    from unimos.preprocess.cache import open_cache, preprocess_manifest
    from unimos.preprocess.plan import load_plan

    marker = out / "throughput_inputs.json"
    wanted = {"quick": quick, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) != wanted:
        raise OutputError(out, f"holds demo data made with {json.loads(marker.read_text())}, not {wanted}",
                          "give another --out, or the same --quick/--seed as before")
    manifest_path = out / "data" / "manifest.yaml"
    if not manifest_path.exists():
        make_demo_data(out / "data", seed=seed, quick=quick)
        write_json_atomic(marker, wanted)
    manifest = load_manifest(manifest_path)
    plan_path = out / "plan_3mm-small.json"
    plan = load_plan(plan_path) if plan_path.exists() else plan_manifest(manifest, plan_path, "3mm-small", seed=seed,
                                                                        workers=workers)
    preprocess_manifest(manifest, plan, out / "cache", workers=workers)
    cases = [c for c in open_cache(out / "cache", plan) if c.meta["split"] == "train" and c.meta["has_label"]]
    return Inputs(plan, cases, len(cases[0].meta["candidate_table"]))


# --------------------------------------------------------------------------------------------- training step
@dataclass
class Trainer:
    """A fresh network, loss, optimiser and schedule, seeded, as `unimos.training.loop.train` builds them."""

    strategy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    config: TrainConfig
    patch: list[int]
    device: torch.device


def train_config(iterations: int, seed: int, device: str) -> TrainConfig:
    """unimos's defaults with deep supervision on, as the demo trains."""
    return TrainConfig(iterations=iterations, seed=seed, device=device, deep_supervision=True, checkpoint_every=0,
                       log_every=1)


def build_trainer(inputs: Inputs, config: TrainConfig) -> Trainer:
    """The strategy (network + loss), optimiser and schedule of `config` on `device`, same seed every call."""
    from unimos.training.loop import build_strategy, training_patch
    from unimos.training.optim import build_optimizer, build_schedule
    from unimos.utils.device import resolve_device

    device = resolve_device(config.device)
    in_channels = int(inputs.cases[0].image().shape[0])
    strategy = build_strategy(config, inputs.plan, in_channels, len(inputs.plan.classes) + 1).to(device)
    strategy.train()
    optimizer = build_optimizer(strategy.parameters(), config)
    patch = training_patch(inputs.plan.patch_size, strategy.nets["main"])
    return Trainer(strategy, optimizer, build_schedule(optimizer, config), config, patch, device)


def training_step(trainer: Trainer, batch: Batch, step: int) -> float:
    """One optimiser step on a batch already on the device, the loop's body without logging and checkpoints."""
    total = trainer.config.iterations
    trainer.optimizer.zero_grad(set_to_none=True)
    out = trainer.strategy.step(batch, None, step, total)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(trainer.strategy.parameters(), 12.0)
    trainer.optimizer.step()
    trainer.schedule.step()
    trainer.strategy.after_step(step, total)
    return float(out.loss.detach())  # waits for the device, as the loop's logging does


# --------------------------------------------------------------------------------------------------- loaders
def unimos_batches(inputs: Inputs, patch: Sequence[int], batch_size: int, config: TrainConfig) -> Iterator[Batch]:
    """unimos's training batches: `PatchSource` (sampler `cmd`, 90% class-centred) then `augment_batch` with the
    default `AugmentConfig`, in the calling process, as the training loop makes them."""
    from unimos.training.batches import PatchSource

    source = PatchSource(inputs.cases, patch, config.sampler, config.foreground_fraction, seed=config.seed)
    return _augmented(source, batch_size, config.seed)


def _augmented(source: PatchSource, batch_size: int, seed: int) -> Iterator[Batch]:
    """Endless batches of `source`, augmented; the sampler's numpy and the augmentation's torch generators seeded
    as the loop seeds them."""
    from unimos.augment.transforms import augment_batch

    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    settings = AugmentConfig()
    while True:
        batch = source.batch(batch_size, rng)
        yield {**batch, **augment_batch({k: batch[k] for k in KEYS}, settings, generator)}


def foreground_ratios(label_values: int) -> list[float]:
    """`RandCropByLabelClassesd` ratios for a class-centred crop: never background, every label value alike (MONAI
    then picks uniformly among the values present in the case, as unimos's sampler picks among annotated classes)."""
    if label_values < 2:
        raise ValueError(f"a class-centred crop needs at least one foreground label value, got {label_values} values")
    return [0.0] + [1.0] * (label_values - 1)


def monai_transforms(patch: Sequence[int], label_values: int, foreground_fraction: float, seed: int) -> Any:
    """The MONAI `Compose` equivalent of unimos's patch cutting and default augmentation (see `describe_monai`)."""
    from monai.data import NumpyReader
    from monai.transforms import (
        Compose,
        LoadImaged,
        OneOf,
        RandAdjustContrastd,
        RandCropByLabelClassesd,
        RandFlipd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandRotated,
        RandScaleIntensityd,
        RandScaleIntensityFixedMeand,
        RandSpatialCropSamplesd,
        RandZoomd,
        SpatialPadd,
    )

    aug = AugmentConfig()
    if aug.elastic_probability > 0:
        raise NotImplementedError("unimos's default now deforms elastically; add Rand3DElasticd to this pipeline")
    keys = list(KEYS)
    patch = [int(p) for p in patch]
    limit = math.radians(aug.max_rotation_degrees)
    flips = [RandFlipd(keys, prob=aug.flip_probability, spatial_axis=axis)
             for axis in range(3) if aug.flip_probability > 0 and (aug.flip_axes is None or axis in aug.flip_axes)]
    class_centred = RandCropByLabelClassesd(keys, "label", patch, ratios=foreground_ratios(label_values),
                                            num_classes=label_values, num_samples=1, warn=False)
    anywhere = RandSpatialCropSamplesd(keys, patch, num_samples=1, random_size=False)
    transforms = Compose([
        LoadImaged("image", reader=NumpyReader(channel_dim=0)),
        LoadImaged(["label", "region"], reader=NumpyReader(), dtype=np.uint8, ensure_channel_first=True),
        SpatialPadd(keys, patch),
        OneOf([class_centred, anywhere], weights=[foreground_fraction, 1.0 - foreground_fraction]),
        *flips,
        RandRotated(keys, range_x=limit, range_y=limit, range_z=limit, prob=aug.rotation_probability,
                    mode=("bilinear", "nearest", "nearest"), padding_mode="zeros"),
        RandZoomd(keys, prob=aug.scale_probability, min_zoom=aug.scale_range[0], max_zoom=aug.scale_range[1],
                  mode=("trilinear", "nearest", "nearest"), padding_mode="constant"),
        # nnU-Net's order, as unimos: noise, blur, brightness, contrast, gamma
        RandGaussianNoised("image", prob=aug.noise_probability, std=aug.noise_max_sigma),
        RandGaussianSmoothd("image", sigma_x=aug.blur_sigma_range, sigma_y=aug.blur_sigma_range,
                            sigma_z=aug.blur_sigma_range, prob=aug.blur_probability),
        RandScaleIntensityd("image", factors=_factor_range(aug.brightness_range), prob=aug.brightness_probability),
        RandScaleIntensityFixedMeand("image", factors=_factor_range(aug.contrast_range), preserve_range=True,
                                     prob=aug.contrast_probability),
        RandAdjustContrastd("image", prob=aug.gamma_probability, gamma=aug.gamma_range),
    ])
    return transforms.set_random_state(seed=seed)


def _factor_range(multiplier: tuple[float, float]) -> tuple[float, float]:
    """MONAI scales by (1 + factor): unimos's multiplier range (low, high) as a factor range."""
    return multiplier[0] - 1.0, multiplier[1] - 1.0


def monai_items(cases: Sequence[CachedCase]) -> list[dict[str, Any]]:
    """One dataset item per case: the cached arrays' paths and the case's candidate table (passed through)."""
    return [{"image": str(c.folder / "image.npy"), "label": str(c.folder / "label.npy"),
             "region": str(c.folder / "region.npy"), "tables": np.asarray(c.meta["candidate_table"], dtype=bool)}
            for c in cases]


def monai_loader(inputs: Inputs, patch: Sequence[int], batch_size: int, workers: int, batches: int,
                 config: TrainConfig, pin_memory: bool) -> torch.utils.data.DataLoader:
    """`monai.data.Dataset` (no caching) in a torch `DataLoader`, cases drawn with replacement for `batches` batches
    (one epoch, so workers start once), each worker's transforms seeded apart by MONAI's `worker_init_fn`."""
    from monai.data import Dataset, list_data_collate, worker_init_fn

    transforms = monai_transforms(patch, inputs.label_values, config.foreground_fraction, config.seed)
    dataset = Dataset(monai_items(inputs.cases), transform=transforms)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=batch_size * batches,
                                             generator=torch.Generator().manual_seed(config.seed))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                       collate_fn=list_data_collate, worker_init_fn=worker_init_fn,
                                       pin_memory=pin_memory)


def monai_batches(loader: torch.utils.data.DataLoader) -> Iterator[Batch]:
    """The loader's batches in the layout the loss takes: label and region without the channel axis."""
    for batch in loader:
        yield to_training_batch(batch)


def to_training_batch(batch: dict[str, Any]) -> Batch:
    """MONAI's collated dict -> plain tensors: image float (B, C, *S), label int64 and region bool (B, *S)."""
    plain = {k: v.as_tensor() if hasattr(v, "as_tensor") else torch.as_tensor(v) for k, v in batch.items()
             if k in (*KEYS, "tables")}
    return {"image": plain["image"].float(), "label": plain["label"][:, 0].long(),
            "region": plain["region"][:, 0] > 0, "tables": plain["tables"].bool()}


# ------------------------------------------------------------------------------------------------- measuring
@dataclass
class StepTimes:
    """Seconds per measured step: blocked waiting for the batch, and the whole step (wait included)."""

    wait: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=False) for k, v in batch.items()}


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(batches: Iterator[Batch], trainer: Trainer, warmup: int, steps: int) -> StepTimes:
    """Run warmup + steps training steps; time the last `steps` (the wait is `next` plus the copy to the device)."""
    times = StepTimes()
    for step in range(warmup + steps):
        start = time.perf_counter()
        batch = _to_device(next(batches), trainer.device)
        ready = time.perf_counter()
        training_step(trainer, batch, step)
        _synchronise(trainer.device)
        end = time.perf_counter()
        if step >= warmup:
            times.wait.append(ready - start)
            times.total.append(end - start)
    return times


def time_data_only(batches: Iterator[Batch], device: torch.device, warmup: int, count: int) -> float:
    """Batches per second of a loader alone (made and moved to the device), after `warmup` batches."""
    for _ in range(warmup):
        _to_device(next(batches), device)
    _synchronise(device)
    start = time.perf_counter()
    for _ in range(count):
        _to_device(next(batches), device)
    _synchronise(device)
    return count / (time.perf_counter() - start)


def summarise_steps(times: StepTimes) -> dict[str, float]:
    """steps_per_s = 1 / mean step; data_wait_share = total wait / total step time; medians in milliseconds."""
    if not times.total:
        raise ValueError("no measured steps to summarise")
    total = sum(times.total)
    return {"steps_per_s": len(times.total) / total, "data_wait_share": sum(times.wait) / total,
            "median_step_ms": 1000.0 * statistics.median(times.total),
            "median_wait_ms": 1000.0 * statistics.median(times.wait), "steps": len(times.total)}


def train_loop_check(inputs: Inputs, config: TrainConfig, warmup: int, run_dir: Path) -> dict[str, float]:
    """unimos's own `train()` for warmup + steps iterations; its log.csv's per-step seconds after the warm-up."""
    import csv

    from unimos.training.loop import train

    train(inputs.cases, inputs.plan, config, run_dir)
    with open(run_dir / "log.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) > warmup]
    return summarise_steps(StepTimes([float(r["data_seconds"]) for r in rows], [float(r["seconds"]) for r in rows]))


# ------------------------------------------------------------------------------------------------------ rows
@dataclass
class Row:
    """One loader's results."""

    key: str
    label: str
    workers: int
    steps: dict[str, float]
    data_batches_per_s: float | None

    def payload(self) -> dict[str, Any]:
        return {**self.steps, "data_batches_per_s": self.data_batches_per_s, "workers": self.workers}


def measure_unimos(inputs: Inputs, args: argparse.Namespace, counts: dict[str, int]) -> Row:
    """unimos's loader: training steps, then the loader alone."""
    trainer = build_trainer(inputs, train_config(counts["warmup"] + counts["steps"], args.seed, args.device))
    batch_size = inputs.plan.batch_size
    steps = summarise_steps(time_training(unimos_batches(inputs, trainer.patch, batch_size, trainer.config),
                                          trainer, counts["warmup"], counts["steps"]))
    data = time_data_only(unimos_batches(inputs, trainer.patch, batch_size, trainer.config), trainer.device,
                          counts["warmup"], counts["data_batches"])
    return Row("unimos", "unimos `PatchSource` + `augment_batch`", 0, steps, data)


def measure_monai(inputs: Inputs, args: argparse.Namespace, counts: dict[str, int], workers: int) -> Row:
    """The MONAI pipeline with `workers` DataLoader processes: training steps, then the loader alone."""
    trainer = build_trainer(inputs, train_config(counts["warmup"] + counts["steps"], args.seed, args.device))
    batch_size = inputs.plan.batch_size
    pin = trainer.device.type == "cuda"
    train_loader = monai_loader(inputs, trainer.patch, batch_size, workers, counts["warmup"] + counts["steps"],
                                trainer.config, pin)
    steps = summarise_steps(time_training(monai_batches(train_loader), trainer, counts["warmup"], counts["steps"]))
    data_loader = monai_loader(inputs, trainer.patch, batch_size, workers, counts["warmup"] + counts["data_batches"],
                               trainer.config, pin)
    data = time_data_only(monai_batches(data_loader), trainer.device, counts["warmup"], counts["data_batches"])
    key = "monai" if workers == 0 else f"monai_{workers}_workers"
    return Row(key, f"MONAI `Compose` in `DataLoader`, {workers} workers", workers, steps, data)


# ----------------------------------------------------------------------------------------------------- report
def describe_unimos() -> str:
    """What unimos runs per batch, in words (from its defaults)."""
    aug, share = AugmentConfig(), TrainConfig().foreground_fraction
    return (f"unimos: per sample, sampler `cmd` draws a case and a centre ({share:.0%} on a voxel of a class drawn "
            f"uniformly among the annotated ones, the rest anywhere) and `PatchSource` cuts image, label and region "
            f"from the memory-mapped cache (padding overhang); then `augment_batch` on the batch: rotation "
            f"p={aug.rotation_probability} (+-{aug.max_rotation_degrees:g} deg around each axis) and isotropic zoom "
            f"p={aug.scale_probability} {aug.scale_range} in one `grid_sample` (nearest for label and region), flips "
            f"p={aug.flip_probability}, elastic p={aug.elastic_probability}; Gaussian noise p={aug.noise_probability} "
            f"(sigma <= {aug.noise_max_sigma}), blur p={aug.blur_probability} (sigma {aug.blur_sigma_range}), "
            f"brightness p={aug.brightness_probability} {aug.brightness_range}, contrast around the mean "
            f"p={aug.contrast_probability} {aug.contrast_range} (range kept), gamma p={aug.gamma_probability} "
            f"{aug.gamma_range}. In the training process: no worker process, no thread.")


def describe_monai() -> str:
    """What the MONAI pipeline runs per sample, in words."""
    aug, share = AugmentConfig(), TrainConfig().foreground_fraction
    flips = f"`RandFlipd` p={aug.flip_probability} per axis -> " if aug.flip_probability > 0 else ""
    return ("MONAI: `Dataset` (no cache) of the same cached .npy arrays: `LoadImaged` (NumpyReader; image, "
            f"label, region) -> `SpatialPadd` -> `OneOf` weights {share:g}/{1 - share:g} of `RandCropByLabelClassesd` "
            "(ratios 0 for background, 1 for every label value: uniform among those present) / "
            f"`RandSpatialCropSamplesd` -> {flips}`RandRotated` p={aug.rotation_probability} "
            f"+-{aug.max_rotation_degrees:g} deg per axis -> `RandZoomd` p={aug.scale_probability} {aug.scale_range} "
            f"(nearest for label, region) -> `RandGaussianNoised` p={aug.noise_probability} -> `RandGaussianSmoothd` "
            f"p={aug.blur_probability} -> `RandScaleIntensityd` p={aug.brightness_probability} -> "
            f"`RandScaleIntensityFixedMeand` (preserve_range) p={aug.contrast_probability} -> `RandAdjustContrastd` "
            f"p={aug.gamma_probability} {aug.gamma_range}; `list_data_collate`; cases drawn with replacement, one "
            "patch per loaded volume.")


def render_table(rows: Sequence[Row], header: str) -> str:
    """The Markdown table, its header lines first."""
    lines = [header, "", describe_unimos(), "", describe_monai(), "",
             "| loader | worker processes | steps/s | median step (ms) | median data wait (ms) | data wait share "
             "| data only (batches/s) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        s = row.steps
        data = "-" if row.data_batches_per_s is None else f"{row.data_batches_per_s:.2f}"
        lines.append(f"| {row.label} | {row.workers} | {s['steps_per_s']:.3f} | {s['median_step_ms']:.0f} | "
                     f"{s['median_wait_ms']:.1f} | {100 * s['data_wait_share']:.1f}% | {data} |")
    return "\n".join(lines) + "\n"


def verdicts(rows: dict[str, Row]) -> dict[str, Any]:
    """Ratios of unimos's steps per second to each MONAI row's, and the issue's two goals."""
    unimos = rows["unimos"].steps
    ratios = {key: unimos["steps_per_s"] / row.steps["steps_per_s"] for key, row in rows.items()
              if key.startswith("monai")}
    result: dict[str, Any] = {"ratio_steps_per_s": ratios,
                              "goal_data_wait_below_10pct": unimos["data_wait_share"] < 0.10}
    if "monai" in ratios:
        result["goal_2x_monai_same_workers"] = ratios["monai"] >= 2.0
    return result


def verdict_lines(result: dict[str, Any], share: float) -> list[str]:
    """The verdicts in words."""
    lines = [f"unimos / {key} steps per second: {ratio:.2f}x" for key, ratio in result["ratio_steps_per_s"].items()]
    met = {True: "met", False: "missed"}
    lines.append(f"goal data wait < 10% of the step: {100 * share:.1f}% ({met[result['goal_data_wait_below_10pct']]})")
    if "goal_2x_monai_same_workers" in result:
        lines.append(f"goal >= 2x MONAI with the same workers (0): {result['ratio_steps_per_s']['monai']:.2f}x "
                     f"({met[result['goal_2x_monai_same_workers']]})")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="working folder: demo data, plan, cache (reused)")
    parser.add_argument("--quick", action="store_true", help="smoke run: quick demo data, 3 steps per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--monai-workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader worker counts, one MONAI row each (0 = unimos's count)")
    parser.add_argument("--no-train-check", action="store_true",
                        help="skip the row timed by unimos's own train() (its log.csv), a check of this script")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where throughput.md and summary.json go")
    args = parser.parse_args(argv)

    counts = SETTINGS["quick" if args.quick else "full"]
    clock = time.perf_counter()
    inputs = prepare_inputs(args.out, args.quick, args.seed, workers=2)
    print(f"inputs ready in {time.perf_counter() - clock:.0f} s: {len(inputs.cases)} labeled training cases",
          flush=True)
    rows: dict[str, Row] = {}
    rows["unimos"] = measure_unimos(inputs, args, counts)
    print(f"unimos: {rows['unimos'].steps['steps_per_s']:.3f} steps/s", flush=True)
    for workers in args.monai_workers:
        row = measure_monai(inputs, args, counts, workers)
        rows[row.key] = row
        print(f"{row.key}: {row.steps['steps_per_s']:.3f} steps/s", flush=True)
    if not args.no_train_check:
        config = train_config(counts["warmup"] + counts["steps"], args.seed, args.device)
        rows["unimos_train_loop"] = Row("unimos_train_loop", "unimos `train()` itself (its log.csv)", 0,
                                        train_loop_check(inputs, config, counts["warmup"], args.out / "train_check"),
                                        None)

    from unimos.utils.device import resolve_device

    trainer_device = resolve_device(args.device)
    patch = [int(p) for p in inputs.plan.patch_size]
    header = (f"{machine_line()}; device {trainer_device}, torch threads {torch.get_num_threads()}; patch {patch} "
              f"at 3 mm, batch {inputs.plan.batch_size}, {counts['steps']} steps after {counts['warmup']} warm-up "
              f"per row, data only {counts['data_batches']} batches after {counts['warmup']}; demo data "
              f"{'quick' if args.quick else 'default'}, {len(inputs.cases)} labeled training cases; DynUNet "
              f"{inputs.plan.network['filters']} with deep supervision, partial loss, AdamW")
    table = render_table(list(rows.values()), header)
    result = verdicts(rows)
    text = table + "\n" + "\n".join(verdict_lines(result, rows["unimos"].steps["data_wait_share"])) + "\n"
    print(text, flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results / "throughput.md", text)
    merge_summary("throughput", {**{k: r.payload() for k, r in rows.items()}, **result,
                                 "setup": {"patch": patch, "batch_size": inputs.plan.batch_size, **counts,
                                           "device": str(trainer_device), "quick": args.quick,
                                           "date_machine": machine_line()}}, results=args.results)
    print(f"written: {args.results / 'throughput.md'}, {args.results / 'summary.json'} "
          f"({time.perf_counter() - clock:.0f} s in all)")


if __name__ == "__main__":
    sys.exit(main())
