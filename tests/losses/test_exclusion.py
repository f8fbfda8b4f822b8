import pytest
import torch

from tests.losses.helpers import identity_tables, logits_from_probs
from unimos.losses import Targets, build_loss
from unimos.losses.exclusion import exclusion_mask


def test_exclusion_penalises_other_organs_on_known_voxels():
    # voxel 0 is organ 1, voxel 1 is organ 2, voxel 2 background (not a known organ voxel)
    probs = [[0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.6, 0.2, 0.2]]
    logits = logits_from_probs(probs, (1, 3))
    labels = torch.tensor([[[1, 2, 0]]])
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), identity_tables(1, 3))
    # E_0 = {v0, v1}, E_1 = {v1}, E_2 = {v0}; sums of p_c over the region: 0.9, 1.0, 1.1
    dice_0 = 2 * (0.2 + 0.1) / (2 + 0.9 + 1)
    dice_1 = 2 * 0.3 / (1 + 1.0 + 1)
    dice_2 = 2 * 0.3 / (1 + 1.1 + 1)
    expected = (dice_0 + dice_1 + dice_2) / 3
    assert build_loss("exclusion")(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_exclusion_is_lower_when_known_voxels_are_predicted_as_their_organ():
    labels = torch.tensor([[[1, 2, 0]]])
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), identity_tables(1, 3))
    right = logits_from_probs([[0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [0.9, 0.05, 0.05]], (1, 3))
    swapped = logits_from_probs([[0.05, 0.05, 0.9], [0.05, 0.9, 0.05], [0.9, 0.05, 0.05]], (1, 3))
    exclusion = build_loss("exclusion")
    assert exclusion(right, targets) < exclusion(swapped, targets)


def test_exclusion_spares_unannotated_children_of_the_known_organ():
    # 0 background, 1 liver, 2 liver_tumor unannotated: a liver voxel may be tumour
    table = torch.eye(3, dtype=torch.bool)
    table[1, 2] = True
    labels = torch.tensor([[[1, 0]]])
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), table.unsqueeze(0))
    excluded = exclusion_mask(targets)[0, :, 0, 0]
    assert excluded.tolist() == [True, False, False]


def test_exclusion_is_zero_without_known_organ_voxels():
    targets = Targets(torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.bool),
                      identity_tables(1, 3))
    assert build_loss("exclusion")(torch.randn(1, 3, 2, 2), targets).item() == 0.0
