"""Training settings: one dataclass, saved as JSON beside the run, so a run can be repeated exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from unimos.errors import UnimosError


@dataclass
class TrainConfig:
    """What to train and how; defaults suit the 3 mm plan on 2 CPU cores.

    method: loss from the loss registry (`partial`, `naive`, `ignore`, `partial_focal_dice`, ...).
    tensorboard: also write TensorBoard scalars to RUN/tensorboard (optional package `unimos[tensorboard]`).
    strategy: step strategy (`supervised`, later the semi-supervised ones); options in `strategy_options`.
    iterations: optimisation steps; batch_size 0 = the plan's.
    sampler: `cmd` (class -> modality -> dataset -> case, paper 002), `mdc` or `random`.
    foreground_fraction: share of patches centred on a sampled class (paper 002 centres every patch on one);
        the rest are random, so background far from organs is seen too.
    precision: autocast of the network (utils/precision.py): `auto` = bfloat16 where the hardware runs it natively
        (a CPU with AMX, a recent GPU; about twice as fast as float32), else float32; `float16` on CUDA only,
        with loss scaling. Weights, optimiser and losses stay float32.
    roi_margin_mm: when set, random patch centres keep to the labeled organs' bounding box grown by this margin:
        the fine stage of a coarse-to-fine cascade (paper 001), which at inference runs only inside the region
        the coarse stage found (`predict --coarse`). None: anywhere in the volume.
    slice_resize: 2D networks only: resize every axial slice to this many pixels a side before the network sees
        it, in training and in prediction (UniMOS, paper 000: 256); 0 keeps the plan's grid. `slice_patch` is the
        side of the training crop from the resized slice (0: seven eighths of it, UniMOS's 224 of 256).
    """

    method: str = "partial"
    strategy: str = "supervised"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    network: str = "dynunet"
    deep_supervision: bool = False
    iterations: int = 500
    batch_size: int = 0
    optimizer: str = "adamw"
    learning_rate: float = 3e-3
    weight_decay: float = 3e-5
    momentum: float = 0.99
    schedule: str = "poly"
    poly_power: float = 0.9
    step_every: int = 0
    step_gamma: float = 0.5
    sampler: str = "cmd"
    foreground_fraction: float = 0.9
    roi_margin_mm: float | None = None
    slice_resize: int = 0
    slice_patch: int = 0
    augment: bool = True
    entropy_weight: float = 0.0
    exclusion_weight: float = 0.0
    precision: str = "auto"
    validate_every: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    tensorboard: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    train_splits: list[str] = field(default_factory=lambda: ["train"])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        payload = dict(payload)
        if "amp" in payload:  # configs written before `precision`: amp meant float16 autocast on CUDA
            payload.setdefault("precision", "float16" if payload["amp"] else "float32")
            del payload["amp"]
        unknown = sorted(set(payload) - known)
        if unknown:
            raise UnimosError("training config", f"unknown settings {unknown}", f"use only {sorted(known)}")
        return cls(**payload)
