"""What every loss receives besides the logits: labels, annotated region and per-case candidate tables."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Targets:
    """Supervision for a batch, in the candidate-set form of docs/architecture.md.

    Attributes:
        labels: (B, *spatial) int64 project class indices; 0 outside the annotated region.
        region: (B, *spatial) bool, True where the label carries information.
        tables: (B, C, C) bool; tables[b, l] is the candidate set of a voxel of sample b labeled l inside the region.
        sliced: (B,) bool, True for samples of sparse sources, whose Dice may be scored slice by slice
            (scoring_units.py); the others are scored per volume whatever shape their region has (a patch hanging
            over the image border has a region that looks like a stack of slices). None: every sample may be.
    """

    labels: torch.Tensor
    region: torch.Tensor
    tables: torch.Tensor
    sliced: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return int(self.tables.shape[-1])

    def candidates(self) -> torch.Tensor:
        """(B, C, *spatial) bool candidate mask: the table row of each voxel's label, every class outside the region."""
        batch = self.labels.shape[0]
        flat = self.labels.reshape(batch, -1)
        rows = torch.gather(self.tables, 1, flat.unsqueeze(-1).expand(-1, -1, self.num_classes))  # (B, N, C)
        mask = rows.permute(0, 2, 1).reshape(batch, self.num_classes, *self.labels.shape[1:])
        return mask | ~self.region.unsqueeze(1)

    def naive(self) -> "Targets":
        """The naive reading: every unannotated class is background (singleton candidate sets), region kept."""
        eye = torch.eye(self.num_classes, dtype=torch.bool, device=self.tables.device)
        return replace(self, tables=eye.expand_as(self.tables).clone())

    def may_slice(self, b: int) -> bool:
        """Whether sample b may be scored slice by slice (see `sliced`)."""
        return self.sliced is None or bool(self.sliced[b])

    def to(self, device: torch.device | str) -> "Targets":
        return Targets(self.labels.to(device), self.region.to(device), self.tables.to(device),
                       None if self.sliced is None else self.sliced.to(device))


def targets_of(batch: dict[str, torch.Tensor]) -> Targets:
    """The loss-facing view of a training batch (its `label`, `region`, `tables` and optional `sliced` tensors)."""
    return Targets(batch["label"], batch["region"], batch["tables"], batch.get("sliced"))
