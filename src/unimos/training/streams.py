"""The training loop's random streams: patch sampling and augmentation, one pair for labeled and one for unlabeled
batches, so that a strategy drawing unlabeled batches sees exactly the labeled batches supervised training sees
with the same seed (a comparison of strategies then differs by the use of unlabeled data, not by luck of the draw).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

UNLABELED_STREAM = 1  # numpy SeedSequence spawn key / torch seed offset of the unlabeled stream


@dataclass
class RandomStreams:
    """Sampler (numpy) and augmentation (torch) generators of the labeled and the unlabeled batches."""

    labeled_sampler: np.random.Generator
    labeled_augment: torch.Generator
    unlabeled_sampler: np.random.Generator
    unlabeled_augment: torch.Generator

    @classmethod
    def seeded(cls, seed: int) -> "RandomStreams":
        return cls(np.random.default_rng(seed), torch.Generator().manual_seed(seed),
                   np.random.default_rng([seed, UNLABELED_STREAM]),
                   torch.Generator().manual_seed(seed + UNLABELED_STREAM * 1_000_003))

    def sampler_state(self) -> dict[str, Any]:
        """JSON-able states of the two samplers (for checkpoint metadata)."""
        return {"labeled": self.labeled_sampler.bit_generator.state,
                "unlabeled": self.unlabeled_sampler.bit_generator.state}

    def augment_state(self) -> dict[str, torch.Tensor]:
        """The two augmentation generators' states (checkpoint tensors)."""
        return {"augment_rng": self.labeled_augment.get_state(),
                "unlabeled_augment_rng": self.unlabeled_augment.get_state()}

    def restore(self, sampler_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Undo `sampler_state` / `augment_state`; a checkpoint from before the unlabeled stream keeps its seed."""
        if "labeled" in sampler_state:
            self.labeled_sampler.bit_generator.state = sampler_state["labeled"]
            self.unlabeled_sampler.bit_generator.state = sampler_state["unlabeled"]
        else:
            self.labeled_sampler.bit_generator.state = sampler_state
        self.labeled_augment.set_state(tensors["extra.augment_rng"])
        if "extra.unlabeled_augment_rng" in tensors:
            self.unlabeled_augment.set_state(tensors["extra.unlabeled_augment_rng"])
