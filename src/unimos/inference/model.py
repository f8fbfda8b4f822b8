"""A trained model as prediction sees it: the network a checkpoint describes, with its weights, plan and classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unimos.data.plan_spec import ModelPlan, checked
from unimos.data.taxonomy import Taxonomy
from unimos.networks import checkpoint as ckpt
from unimos.networks.registry import build_network


@dataclass
class LoadedModel:
    """A trained network ready to predict: weights on `device`, its plan (what its checkpoint keeps of it: the
    MODEL_KEYS and hashes), class names (0 = background) and metadata."""

    network: torch.nn.Module
    plan: ModelPlan
    class_names: list[str]
    meta: dict[str, Any]
    device: torch.device

    @property
    def taxonomy(self) -> Taxonomy:
        """The model's classes with their parents (which are lesions inside which organ)."""
        return Taxonomy.from_json(self.meta["classes"])


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Build the network a checkpoint describes and load its weights (safetensors only)."""
    device = torch.device(device)
    meta = ckpt.read_checkpoint_meta(checkpoint)
    plan = checkpoint_plan(meta, checkpoint)
    tensors = ckpt.load_tensors(checkpoint)
    network = build_network(dict(meta["network"]), int(meta["in_channels"]), len(meta["classes"]) + 1)
    state = {k[len("model.main."):]: v for k, v in tensors.items() if k.startswith("model.main.")}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ckpt.CheckpointError(checkpoint,
                                   f"weights do not fit the network it describes ({str(err).splitlines()[0]})",
                                   "use an intact checkpoint written by `unimos train`") from None
    network.to(device).eval()
    names = ["background"] + [c["name"] for c in meta["classes"]]
    return LoadedModel(network, plan, names, meta, device)


def checkpoint_plan(meta: dict[str, Any], checkpoint: str | Path) -> ModelPlan:
    """The plan a checkpoint's metadata keeps, checked once here; a CheckpointError naming its wrong fields."""
    plan, problems = checked(ModelPlan, meta.get("plan"))
    if plan is None:
        raise ckpt.CheckpointError(checkpoint, "keeps a plan this version cannot read: " + "; ".join(problems),
                                   "use a checkpoint written by `unimos train`")
    return plan
