"""Small builders of logits and Targets for the loss tests (real tensors, no mocks)."""

from __future__ import annotations

import math

import torch

from unimos.losses import Targets


def identity_tables(batch: int, num_classes: int) -> torch.Tensor:
    """(B, C, C) full-label tables: every candidate set a singleton."""
    return torch.eye(num_classes, dtype=torch.bool).expand(batch, num_classes, num_classes).clone()


def partial_table(num_classes: int, annotated: set[int]) -> torch.Tensor:
    """(C, C) table of a partial label without hierarchy: row 0 = background + unannotated classes, row c = {c}."""
    table = torch.eye(num_classes, dtype=torch.bool)
    for c in range(1, num_classes):
        if c not in annotated:
            table[0, c] = True
    return table


def logits_from_probs(rows: list[list[float]], spatial: tuple[int, ...]) -> torch.Tensor:
    """(1, C, *spatial) logits whose softmax is exactly the given per-voxel probability rows (voxel order = C order)."""
    logits = torch.tensor([[math.log(p) for p in row] for row in rows], dtype=torch.float64)
    return logits.T.reshape(1, len(rows[0]), *spatial).float()


def random_batch(spatial: tuple[int, ...], num_classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, Targets]:
    """Random logits and a mixed batch: full, partial (class 2 unannotated), sparse, and unlabeled samples."""
    gen = torch.Generator().manual_seed(seed)
    batch = 4
    logits = torch.randn(batch, num_classes, *spatial, generator=gen)
    labels = torch.randint(0, num_classes, (batch, *spatial), generator=gen)
    tables = identity_tables(batch, num_classes)
    tables[1] = partial_table(num_classes, {c for c in range(1, num_classes) if c != 2})
    tables[2] = partial_table(num_classes, {1})
    labels[1][labels[1] == 2] = 0
    labels[2][labels[2] > 1] = 0
    region = torch.ones(batch, *spatial, dtype=torch.bool)
    region[2, 1::2] = False  # sparse: every other slice along the first spatial axis
    region[3] = False  # unlabeled
    labels[~region] = 0
    return logits, Targets(labels, region, tables)
