"""Checkpoints: weights and tensor state as safetensors, everything else as JSON. Nothing is ever unpickled.

A checkpoint is two files beside each other: NAME.safetensors (model weights, optimizer tensors, torch RNG
state) and NAME.json (plan hash, taxonomy, network, strategy, step, scheduler/sampler state, hyper-parameters).
The JSON is also stored in the safetensors header, so the weights file alone is a whole checkpoint, replaced by one
atomic rename: a process killed between writing the two files leaves new weights beside old JSON, and readers
trust the header copy. The JSON file is for people and tools; both are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from unimos.data.plan_spec import MODEL_KEYS, ModelPlan
from unimos.errors import UnimosError
from unimos.utils.atomic import atomic_path, write_json_atomic

CHECKPOINT_FORMAT = 1
HEADER_KEY = "unimos_checkpoint"


class CheckpointError(UnimosError):
    """A checkpoint is missing, unsafe, damaged, or made for another plan or taxonomy."""


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write NAME.safetensors + NAME.json (atomically, JSON last); `path` is NAME without extension."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = dict(meta)
    if optimizer is not None:
        opt_tensors, info["optimizer"] = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
    for key, value in (extra_tensors or {}).items():
        tensors[f"extra.{key}"] = value.detach().cpu().contiguous()
    weights = path.with_suffix(".safetensors")
    info.update({"checkpoint_format": CHECKPOINT_FORMAT, "weights": weights.name})
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: json.dumps(info)})
    write_json_atomic(path.with_suffix(".json"), info)
    return path


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata (accepts NAME, NAME.json or NAME.safetensors): the copy in the weights file's header
    when there is one (it always matches the weights), else NAME.json."""
    base = _base(path)
    embedded = _header_meta(base.with_suffix(".safetensors"))
    if embedded is not None:
        return embedded
    meta_path = base.with_suffix(".json")
    if not meta_path.exists() and base.with_suffix(".safetensors").is_file():
        raise CheckpointError(meta_path, f"does not exist, and {base.with_suffix('.safetensors')} holds no unimos "
                              "metadata of its own", "copy or rename both files of the checkpoint together")
    if not meta_path.exists():
        raise CheckpointError(base, "does not exist: neither NAME.safetensors nor NAME.json is there (a unimos "
                              "checkpoint is the pair)", "give the path of a checkpoint written by `unimos train`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(meta_path, f"cannot be read as JSON ({err})", "use an intact checkpoint") from None
    if not isinstance(meta, dict) or meta.get("checkpoint_format") != CHECKPOINT_FORMAT:
        raise CheckpointError(meta_path, "is not a unimos checkpoint of a known format", "retrain or re-export it")
    return meta


def _header_meta(weights: Path) -> dict[str, Any] | None:
    """The metadata stored in a safetensors header (reading the header runs no code), or None without one."""
    if not weights.is_file():
        return None
    try:
        with safe_open(str(weights), framework="pt") as handle:
            text = (handle.metadata() or {}).get(HEADER_KEY)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(weights, f"is not a readable safetensors file ({err})",
                              "use an intact checkpoint; it may have been truncated") from None
    if text is None:
        return None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) and meta.get("checkpoint_format") == CHECKPOINT_FORMAT else None


def _base(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix in (".json", ".safetensors"):
        return path.with_suffix("")
    if path.suffix in (".pth", ".pt", ".ckpt", ".pkl"):
        raise CheckpointError(path, "is a pickle-based checkpoint, which can run arbitrary code when loaded",
                              "unimos only loads safetensors + JSON checkpoints; convert the weights with "
                              "safetensors in a trusted environment")
    return path


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint's safetensors file (no code can run while reading it)."""
    base = _base(path)
    read_checkpoint_meta(base)
    # The name it was given, not the one stored inside: a pair renamed or copied (best.json + best.safetensors)
    # must load its own weights.
    weights = base.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(weights, f"does not exist, so {base.with_suffix('.json')} has no weights "
                              "(a unimos checkpoint is NAME.safetensors + NAME.json)",
                              "copy or rename both files of the checkpoint together")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(weights, f"is not a readable safetensors file ({err})",
                              "use an intact checkpoint; it may have been truncated") from None


def check_compatible(meta: dict[str, Any], plan: ModelPlan, where: str | Path) -> None:
    """Refuse a checkpoint made for another plan or taxonomy, saying what differs (the plan's JSON against the
    checkpoint's record of its own)."""
    ours = plan.model_record()
    kept = meta.get("plan", {})
    differences = []
    if meta.get("classes") != ours["classes"]:
        theirs = [c["name"] for c in meta.get("classes", [])]
        differences.append(f"classes {theirs} vs the plan's {[c.name for c in plan.classes]}")
    if meta.get("plan_hash") != plan.hash:
        for key in (k for k in MODEL_KEYS if k != "classes"):  # the classes were compared above
            if kept.get(key) != ours.get(key):
                differences.append(f"{key} {kept.get(key)} vs {ours.get(key)}")
        if not differences:
            differences.append(f"plan hash {meta.get('plan_hash')} vs {plan.hash}")
    if differences:
        raise CheckpointError(where, "was trained for another plan or taxonomy: " + "; ".join(differences),
                              "use the plan the checkpoint was trained with, or retrain")


def load_model_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str | Path) -> None:
    """Load the `model.` tensors into a model, with a clear error when the architecture differs."""
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(where, f"does not fit this network ({str(err).splitlines()[0]})",
                              "use the plan and network the checkpoint was trained with") from None


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    _restore_optimizer(optimizer, tensors, meta["optimizer"])
