"""The one training loop: device, AMP, DDP, checkpoints, logging. Methods differ only by strategy, loss,
network and sampler (docs/architecture.md).

Data parallelism: every rank draws the same global batch (same seeded sampler) and keeps its own slice, so a
run on N processes sees exactly the data of a single process with N times the batch; DDP averages gradients.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import unimos.losses  # noqa: F401  (registers the losses)
import unimos.strategies  # noqa: F401  (registers the strategies)
from unimos.augment.transforms import AugmentConfig, augment_batch
from unimos.data.plan_spec import ModelPlan, Plan
from unimos.errors import Problem, UnimosError, ValidationFailed
from unimos.losses.registry import LOSSES, build_loss
from unimos.networks import checkpoint as ckpt
from unimos.networks.registry import NETWORKS, build_network, network_config_for
from unimos.preprocess.cache import CachedCase
from unimos.preprocess.slices import default_slice_patch
from unimos.strategies import is_multi_round
from unimos.strategies.base import STRATEGIES
from unimos.training.batches import PatchSource
from unimos.training.config import TrainConfig
from unimos.training.optim import build_optimizer, build_schedule
from unimos.training.sampler import SAMPLERS
from unimos.training.streams import RandomStreams
from unimos.training.trainlog import TrainLog
from unimos.training.validate import validation_dice
from unimos.utils.atomic import removed_on_failure, write_json_atomic
from unimos.utils.device import resolve_device
from unimos.utils.runtime import Runtime, resolve_runtime


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    seconds: float
    data_wait_share: float
    val_dice: dict[int, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def check_config(config: TrainConfig) -> None:
    """Every setting a run cannot start with, listed at once before any work (names, the learning rate, the
    device): a user's mistake is not found after preprocessing, nor after an earlier run was set aside."""
    import math

    problems = []
    for option, registry, name in (("--method", LOSSES, config.method), ("--strategy", STRATEGIES, config.strategy),
                                   ("--network", NETWORKS, config.network), ("--sampler", SAMPLERS, config.sampler)):
        if name not in registry.names():
            problems.append(Problem(option, f"'{name}' is not known", f"use one of {', '.join(registry.names())}"))
    for option, name, known in (("--optimizer", config.optimizer, ("adamw", "sgd", "rmsprop")),
                                ("--schedule", config.schedule, ("poly", "step"))):
        if name not in known:
            problems.append(Problem(option, f"'{name}' is not known", f"use one of {', '.join(known)}"))
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        problems.append(Problem("--learning-rate", f"is {config.learning_rate:g}, not a positive number",
                                "give e.g. --learning-rate 3e-3 (the default)"))
    try:
        resolve_device(config.device)
    except UnimosError as err:
        problems.extend(err.problems)
    if len(problems) == 1:
        raise UnimosError(problems[0].where, problems[0].problem, problems[0].fix)
    if problems:
        raise ValidationFailed(problems)


def distributed_context() -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def check_slice_settings(config: TrainConfig, spatial_dims: int, slice_resize: int) -> None:
    """Slice resizing only for 2D networks, without a region-restricted (cascade fine-stage) training, and the crop
    no larger than the resized slice. `slice_resize` is the effective one (command line, else the plan's)."""
    option = "--slice-resize" if config.slice_resize else "--slice-patch"
    if spatial_dims != 2:
        raise UnimosError(option, f"network '{config.network}' is 3D; slices are resized for 2D ones",
                          f"drop {option}, or train a 2D network such as pipofan2d")
    if config.slice_patch and not slice_resize:
        raise UnimosError("--slice-patch", "is a crop of the resized slice, but no --slice-resize is set",
                          "set --slice-resize too (UniMOS: --slice-resize 256 --slice-patch 224)")
    if config.slice_patch > slice_resize:
        raise UnimosError("--slice-patch", f"{config.slice_patch} is larger than the slice resize {slice_resize}",
                          "crop at most the resized slice")
    if slice_resize and config.roi_margin_mm is not None:
        raise UnimosError("--roi-margin-mm", "a cascade's fine stage sees the region's slices, which a slice resize "
                          "would magnify unlike the whole slices it trains on",
                          "drop --slice-resize or --roi-margin-mm")


def network_config(config: TrainConfig, plan: ModelPlan) -> dict[str, Any]:
    """The network the plan describes for `config.network`, with the training's deep supervision and slice resize
    (`config.slice_resize` if set, else the plan's network entry's)."""
    net_config = {**network_config_for(plan, config.network), "deep_supervision": config.deep_supervision}
    slice_resize = int(config.slice_resize or net_config.get("slice_resize", 0))
    if slice_resize or config.slice_patch:
        bare = {k: v for k, v in net_config.items() if k != "slice_resize"}
        check_slice_settings(config, int(build_network(bare, 1, 2).spatial_dims), slice_resize)
        net_config["slice_resize"] = slice_resize
    return net_config


def build_strategy(config: TrainConfig, plan: ModelPlan, in_channels: int, num_classes: int) -> nn.Module:
    """The configured strategy with freshly initialised network(s) (seeded) and loss."""
    net_config = network_config(config, plan)
    torch.manual_seed(config.seed)
    nets = {"main": build_network(net_config, in_channels, num_classes)}
    strategy_cls = STRATEGIES.get(config.strategy)
    for extra in getattr(strategy_cls, "extra_networks", ()):
        torch.manual_seed(config.seed + 1000 + len(nets))
        nets[extra] = build_network(net_config, in_channels, num_classes)
    extra_terms = {k: v for k, v in (("entropy_weight", config.entropy_weight),
                                     ("exclusion_weight", config.exclusion_weight)) if v}
    loss = build_loss(config.method, **extra_terms)
    strategy = strategy_cls(nets, loss, config.strategy_options)
    strategy.setup([c.name for c in plan.classes])
    return strategy


def training_patch(plan_patch: Sequence[int], network: nn.Module, slice_patch: int = 0) -> list[int]:
    """The plan's patch for a 3D network, its in-plane (X, Y) part for a 2D one, a square crop of the resized slice
    for a 2D network that resizes slices (`slice_patch`, 0: preprocess.slices' default); rounded up to the divisor."""
    dims = int(getattr(network, "spatial_dims", 3))
    divisor = network.required_divisor() if hasattr(network, "required_divisor") else (1,) * dims
    resize = int(getattr(network, "slice_resize", 0))
    wanted = [slice_patch or default_slice_patch(resize)] * 2 if resize else list(plan_patch)[:dims]
    return [int(-(-int(p) // int(d)) * int(d)) for p, d in zip(wanted, divisor)]


def _unwrapped_nets(strategy: nn.Module) -> nn.ModuleDict:
    return nn.ModuleDict({k: (v.module if isinstance(v, nn.parallel.DistributedDataParallel) else v)
                          for k, v in strategy.nets.items()})


def _augmenter(config: TrainConfig) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]:
    if not config.augment:
        return lambda batch, generator: batch

    settings = AugmentConfig()

    def run(batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        out = augment_batch({k: batch[k] for k in ("image", "label", "region")}, settings, generator)
        return {**batch, **out}
    return run


def _checkpoint_meta(config: TrainConfig, plan: Plan, step: int, streams: RandomStreams,
                     schedule: torch.optim.lr_scheduler.LRScheduler, in_channels: int,
                     patch: list[int], network: dict[str, Any]) -> dict[str, Any]:
    record = plan.model_record()
    return {
        "step": step,
        "plan_hash": plan.hash,
        "plan": record,
        "classes": record["classes"],
        "network": network,
        "in_channels": in_channels,
        "patch_size": patch,
        "strategy": config.strategy,
        "method": config.method,
        "config": config.to_json(),
        "sampler_state": streams.sampler_state(),
        "schedule_state": {k: v for k, v in schedule.state_dict().items() if k != "lr_lambdas"},
    }


def train(cases: Sequence[CachedCase], plan: Plan, config: TrainConfig, run_dir: str | Path,
          validation_cases: Sequence[CachedCase] = (), resume: bool = False,
          progress: Callable[[int, int, float], None] | None = None, stop_after: int | None = None,
          within_pipeline: bool = False, runtime: Runtime | None = None) -> TrainResult:
    """Train on cached cases; checkpoints and a CSV log go to `run_dir`; returns the final checkpoint path.

    `stop_after` ends this invocation after that many steps in total (checkpointed), for time-boxed jobs that
    continue later with `resume`. A run that fails before its first checkpoint leaves no files of its own behind.
    A multi-round strategy (self_training) is refused unless `within_pipeline` (its pipeline running one round):
    alone, it would be supervised training under another name. `runtime`: the device and precision a pipeline
    resolved once for all its trainings; None resolves `config.device` and `config.precision` here.
    """
    if is_multi_round(config.strategy) and not within_pipeline:
        raise UnimosError("--strategy", f"'{config.strategy}' trains several times (a teacher, pseudo-labels, then "
                          "students), which one run of the training loop cannot do",
                          "run it with `unimos train --strategy self_training` (or "
                          "unimos.pipelines.self_training.run_self_training), or choose a per-step strategy")
    run_dir = Path(run_dir)
    rank, world = distributed_context()
    if rank != 0:  # only rank 0 writes, so only rank 0 may clean up
        return _train(cases, plan, config, run_dir, validation_cases, resume, progress, stop_after, lambda: None,
                      runtime)
    with removed_on_failure(run_dir) as created:
        return _train(cases, plan, config, run_dir, validation_cases, resume, progress, stop_after, created.keep,
                      runtime)


def _train(cases: Sequence[CachedCase], plan: Plan, config: TrainConfig, run_dir: Path,
           validation_cases: Sequence[CachedCase], resume: bool, progress: Callable[[int, int, float], None] | None,
           stop_after: int | None, saved: Callable[[], None], runtime: Runtime | None) -> TrainResult:
    rank, world = distributed_context()
    runtime = runtime or resolve_runtime(config.device, config.precision)
    device, precision = runtime.device, runtime.precision
    if config.threads:
        torch.set_num_threads(config.threads)
    if not cases:
        raise UnimosError(run_dir, "no training cases", "check the manifest's splits and the preprocessing cache")
    in_channels = int(cases[0].image().shape[0])
    num_classes = len(plan.classes) + 1
    batch_size = config.batch_size or plan.batch_size
    strategy = build_strategy(config, plan, in_channels, num_classes).to(device)
    if world > 1:
        for key in list(strategy.nets.keys()):
            if any(p.requires_grad for p in strategy.nets[key].parameters()):  # an EMA teacher is not trained
                strategy.nets[key] = nn.parallel.DistributedDataParallel(strategy.nets[key])
    main_net = _unwrapped_nets(strategy)["main"]
    net_config = network_config(config, plan)  # once: what checkpoints record and a resume must match
    patch = training_patch(plan.patch_size, main_net, config.slice_patch)
    slice_resize = int(getattr(main_net, "slice_resize", 0))
    optimizer = build_optimizer(strategy.parameters(), config)
    schedule = build_schedule(optimizer, config)
    streams = RandomStreams.seeded(config.seed)
    labeled_cases = [c for c in cases if c.meta["has_label"]]
    if not labeled_cases:
        raise UnimosError(run_dir, "none of the training cases has a label", "add labeled cases to the manifest")
    roi_margin = None if config.roi_margin_mm is None else \
        [int(np.ceil(config.roi_margin_mm / s)) for s in plan.target_spacing_mm]
    labeled = PatchSource(labeled_cases, patch, config.sampler, config.foreground_fraction, seed=config.seed,
                          roi_margin=roi_margin, slice_resize=slice_resize)
    unlabeled_cases = [c for c in cases if not c.meta["has_label"]]
    unlabeled = PatchSource(unlabeled_cases, patch, "random", 0.0, seed=config.seed + 1, slice_resize=slice_resize) \
        if getattr(strategy, "needs_unlabeled", False) and unlabeled_cases else None
    augment = _augmenter(config)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == torch.float16)

    start = 0
    latest = run_dir / "checkpoint_latest"
    if resume:
        start = _resume(latest, strategy, optimizer, schedule, streams, plan, net_config, patch,
                        config.iterations)
    elif rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", config.to_json())
        write_json_atomic(run_dir / "plan.json", plan.to_json())
    if rank == 0:
        write_json_atomic(run_dir / "strategy.json", {"strategy": config.strategy, **strategy.describe()})
    log = TrainLog(run_dir, fresh=not resume, tensorboard=config.tensorboard) if rank == 0 else None

    strategy.train()
    losses: list[float] = []
    data_seconds = step_seconds = 0.0
    val: dict[int, float] = {}
    begun = time.perf_counter()
    for step in range(start, config.iterations):
        t0 = time.perf_counter()
        global_batch = labeled.batch(batch_size * world, streams.labeled_sampler)
        batch = {k: v[rank * batch_size:(rank + 1) * batch_size] for k, v in global_batch.items()}
        batch = augment(batch, streams.labeled_augment)
        unl = None
        if unlabeled is not None:
            unl = _unlabeled_batch(unlabeled, batch_size, rank, world, streams, augment, device)
            if getattr(strategy, "needs_partner_batch", False):  # a second, independent draw (UniMatch's CutMix)
                unl["partner_image"] = _unlabeled_batch(unlabeled, batch_size, rank, world, streams, augment,
                                                        device)["image"]
        batch = {k: v.to(device) for k, v in batch.items()}
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with runtime.autocast():
            out = strategy.step(batch, unl, step, config.iterations)
        if not torch.isfinite(out.loss):
            raise UnimosError(run_dir, f"the loss became {float(out.loss.detach())} at step {step}",
                              "lower --learning-rate, or check the inputs for extreme intensities")
        scaler.scale(out.loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(strategy.parameters(), 12.0)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        strategy.after_step(step, config.iterations)
        t2 = time.perf_counter()
        data_seconds += t1 - t0
        step_seconds += t2 - t0
        loss_value = float(out.loss.detach())
        losses.append(loss_value)
        done = step + 1
        is_last = done == config.iterations
        row_val: float | None = None
        if config.validate_every and validation_cases and (done % config.validate_every == 0 or is_last) and rank == 0:
            val = validation_dice(_unwrapped_nets(strategy)["main"], validation_cases, patch, device, precision)
            row_val = float(np.mean(list(val.values()))) if val else None
        if log is not None and (done % config.log_every == 0 or is_last or row_val is not None):
            log.row(done, loss_value, optimizer.param_groups[0]["lr"], t2 - t0, t1 - t0, row_val, out.logs)
        if rank == 0 and (is_last or (config.checkpoint_every and done % config.checkpoint_every == 0)):
            _save(latest, strategy, optimizer, schedule, streams, config, plan, done, in_channels, patch,
                  net_config)
            saved()
        if progress is not None and rank == 0:
            progress(done, config.iterations, loss_value)
        if stop_after is not None and done >= stop_after and not is_last:
            if rank == 0:
                _save(latest, strategy, optimizer, schedule, streams, config, plan, done, in_channels, patch,
                      net_config)
                saved()
            if log is not None:
                log.close()
            return TrainResult(run_dir, latest, done - start, time.perf_counter() - begun,
                               data_seconds / step_seconds if step_seconds else 0.0, val, losses)
    final = run_dir / "checkpoint_final"
    if rank == 0:
        _save(final, strategy, optimizer, schedule, streams, config, plan, config.iterations, in_channels,
              patch, net_config)
        saved()
    if world > 1:
        dist.barrier()
    if log is not None:
        log.close()
    return TrainResult(run_dir, final, config.iterations - start, time.perf_counter() - begun,
                       data_seconds / step_seconds if step_seconds else 0.0, val, losses)


def _unlabeled_batch(source: PatchSource, batch_size: int, rank: int, world: int, streams: RandomStreams,
                     augment: Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]],
                     device: torch.device) -> dict[str, torch.Tensor]:
    """This rank's share of one unlabeled batch, drawn and augmented from the unlabeled streams."""
    drawn = source.batch(batch_size * world, streams.unlabeled_sampler)
    batch = augment({k: v[rank * batch_size:(rank + 1) * batch_size] for k, v in drawn.items()},
                    streams.unlabeled_augment)
    return {k: v.to(device) for k, v in batch.items()}


def _save(path: Path, strategy: nn.Module, optimizer: torch.optim.Optimizer,
          schedule: torch.optim.lr_scheduler.LRScheduler, streams: RandomStreams, config: TrainConfig,
          plan: Plan, step: int, in_channels: int, patch: list[int], network: dict[str, Any]) -> None:
    meta = _checkpoint_meta(config, plan, step, streams, schedule, in_channels, patch, network)
    extra = {"torch_rng": torch.get_rng_state(), **streams.augment_state(),
             **{f"strategy.{k}": v for k, v in strategy.extra_state().items()}}
    ckpt.save_checkpoint(path, _unwrapped_nets(strategy), meta, optimizer, extra)


def check_same_network(meta: dict[str, Any], network: dict[str, Any], patch: list[int], where: Path) -> None:
    """A resumed run must build the network and cut the patches it was started with (slice resize included, which
    adds no weights, so loading them would not notice)."""
    if meta.get("network") != network or list(meta.get("patch_size", patch)) != list(patch):
        raise ckpt.CheckpointError(where, f"was trained with network {meta.get('network')} on patches "
                                   f"{meta.get('patch_size')}, not {network} on {patch}",
                                   "resume with the settings the run was started with (see its config.json), "
                                   "e.g. the same --network, --deep-supervision, --slice-resize, --slice-patch")


def _resume(latest: Path, strategy: nn.Module, optimizer: torch.optim.Optimizer,
            schedule: torch.optim.lr_scheduler.LRScheduler, streams: RandomStreams, plan: Plan,
            network: dict[str, Any], patch: list[int], iterations: int) -> int:
    meta = ckpt.read_checkpoint_meta(latest)
    ckpt.check_compatible(meta, plan, latest)
    check_same_network(meta, network, patch, latest)
    if int(meta["step"]) > iterations:
        raise ckpt.CheckpointError(latest, f"is at step {meta['step']}, beyond the {iterations} iterations asked for",
                                   f"resume with --iterations {meta['step']} or more (the run already has "
                                   f"{meta['step']} steps; its final checkpoint is written when it reaches them)")
    tensors = ckpt.load_tensors(latest)
    ckpt.load_model_weights(_unwrapped_nets(strategy), tensors, latest)
    ckpt.restore_optimizer(optimizer, tensors, meta)
    state = schedule.state_dict()
    state.update(meta["schedule_state"])
    schedule.load_state_dict(state)
    streams.restore(meta["sampler_state"], tensors)
    torch.set_rng_state(tensors["extra.torch_rng"])
    prefix = "extra.strategy."
    strategy.load_extra_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return int(meta["step"])
