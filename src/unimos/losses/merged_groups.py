"""The merged classes of each sample, read from its candidate table (paper 002, eqs. 3-4).

A voxel labeled l inside the region may be any class of row l of the table. The groups a sample's Dice is
computed over are the distinct maximal rows of its table: for a partial label, background merged with every
unannotated class, plus one group per annotated class (with its unannotated children); for a full label, every
class on its own. These are exactly the rows of the labels the sample can carry (0 and its annotated classes);
rows of labels it cannot carry (an unannotated class) lie inside a maximal row and are not groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MergedGroups:
    """Groups as table rows: members[b, m] is the class set of group slot m, used only where is_group[b, m].

    Attributes:
        members: (B, C, C) bool, class sets of the group slots (all False where is_group is False).
        is_group: (B, C) bool, which slots hold a group.
        slot_of_label: (B, C) int64, the group slot of a voxel labeled l (the first group holding its row).
    """

    members: torch.Tensor
    is_group: torch.Tensor
    slot_of_label: torch.Tensor


def merged_groups(tables: torch.Tensor) -> MergedGroups:
    """The distinct maximal rows of each (C, C) candidate table of a (B, C, C) batch, and where each label falls."""
    # subset[b, l, m]: row l is contained in row m
    subset = ~(tables.unsqueeze(2) & ~tables.unsqueeze(1)).any(dim=-1)
    equal = subset & subset.transpose(1, 2)
    maximal = ~(subset & ~equal).any(dim=2)
    num_classes = tables.shape[-1]
    earlier = torch.ones(num_classes, num_classes, dtype=torch.bool, device=tables.device).tril(-1)  # m < l
    repeated = (equal & earlier).any(dim=2)
    is_group = maximal & ~repeated & tables.any(dim=-1)
    members = tables & is_group.unsqueeze(-1)
    slot_of_label = (subset & is_group.unsqueeze(1)).int().argmax(dim=-1)  # first group holding row l
    return MergedGroups(members, is_group, slot_of_label)
