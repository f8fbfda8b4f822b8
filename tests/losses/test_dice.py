import pytest
import torch
from monai.losses import DiceLoss

from tests.losses.helpers import identity_tables, logits_from_probs, partial_table
from unimos.losses import Targets, build_loss
from unimos.losses.merged_groups import merged_groups
from unimos.losses.scoring_units import slicing_axis


def test_merged_dice_matches_hand_computation():
    # classes: 0 background, 1 annotated organ, 2 unannotated organ -> groups {0, 2} and {1}
    probs = [[0.1, 0.7, 0.2], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]]
    logits = logits_from_probs(probs, (1, 4))
    labels = torch.tensor([[[1, 0, 0, 1]]])
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), partial_table(3, {1}).unsqueeze(0))
    # merged background p0 + p2 = 0.3, 0.75, 0.8, 0.4 against truth 0, 1, 1, 0
    dice_background = (2 * (0.75 + 0.8) + 1) / ((0.3 + 0.75 + 0.8 + 0.4) + 2 + 1)
    # organ 1: p1 = 0.7, 0.25, 0.2, 0.6 against truth 1, 0, 0, 1
    dice_organ = (2 * (0.7 + 0.6) + 1) / ((0.7 + 0.25 + 0.2 + 0.6) + 2 + 1)
    expected = 1 - (dice_background + dice_organ) / 2
    assert build_loss("merged_dice")(logits, targets).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
def test_merged_dice_with_identity_tables_is_monai_soft_dice(spatial):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, *spatial, generator=gen)
    labels = torch.randint(0, 4, (2, *spatial), generator=gen)
    labels[1][labels[1] == 3] = 0  # class 3 absent from sample 1: still scored, as an annotated absent class
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), identity_tables(2, 4))
    monai = DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0)(logits, labels.unsqueeze(1))
    torch.testing.assert_close(build_loss("merged_dice")(logits, targets), monai)


def test_merged_groups_follow_the_candidate_table_with_unannotated_children():
    # 0 background, 1 liver (annotated), 2 liver_tumor (child of liver, unannotated), 3 spleen (unannotated)
    table = torch.eye(4, dtype=torch.bool)
    table[0, 3] = True  # a background voxel may be spleen, not tumour (it is outside the liver)
    table[1, 2] = True  # a liver voxel may be tumour
    groups = merged_groups(table.unsqueeze(0))
    assert groups.is_group[0].tolist() == [True, True, False, False]
    assert groups.members[0, 0].tolist() == [True, False, False, True]
    assert groups.members[0, 1].tolist() == [False, True, True, False]
    assert groups.slot_of_label[0].tolist() == [0, 1, 1, 0]


def test_merged_groups_of_a_full_label_are_every_class():
    groups = merged_groups(identity_tables(1, 5))
    assert groups.is_group.all() and groups.slot_of_label[0].tolist() == [0, 1, 2, 3, 4]


def sparse_sample() -> tuple[torch.Tensor, Targets]:
    """A 4-slice 3D sample whose slices 0 and 2 (first spatial axis) are annotated, liver-only labels (C = 3)."""
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 3, 4, 5, 6, generator=gen)
    labels = torch.randint(0, 2, (1, 4, 5, 6), generator=gen)
    region = torch.zeros(1, 4, 5, 6, dtype=torch.bool)
    region[:, [0, 2]] = True
    labels[~region] = 0
    return logits, Targets(labels, region, partial_table(3, {1}).unsqueeze(0))


def test_merged_dice_per_annotated_slice_for_sparse_region():
    logits, targets = sparse_sample()
    loss = build_loss("merged_dice")(logits, targets)
    # each annotated slice on its own, as a fully annotated 2D sample, averaged over the slices
    slices = [0, 2]
    as_2d = Targets(targets.labels[0, slices], torch.ones(2, 5, 6, dtype=torch.bool),
                    targets.tables.expand(2, 3, 3))
    per_slice = build_loss("merged_dice")(logits[0, :, slices].transpose(0, 1), as_2d)
    torch.testing.assert_close(loss, per_slice)
    # and not the per-volume Dice over the same voxels
    over_volume = build_loss("merged_dice")(logits[:, :, slices], Targets(
        targets.labels[:, slices], torch.ones(1, 2, 5, 6, dtype=torch.bool), targets.tables))
    assert abs(loss.item() - over_volume.item()) > 1e-4


def test_merged_dice_ignores_logits_off_the_annotated_slices():
    logits, targets = sparse_sample()
    changed = logits.clone()
    changed[:, :, [1, 3]] = torch.randn(1, 3, 2, 5, 6) * 10
    dice = build_loss("merged_dice")
    torch.testing.assert_close(dice(changed, targets), dice(logits, targets))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slice_axis_is_found_from_the_region(axis):
    region = torch.zeros(4, 5, 6, dtype=torch.bool)
    index = [slice(None)] * 3
    index[axis] = [1, 3]
    region[tuple(index)] = True
    assert slicing_axis(region) == axis
    assert slicing_axis(torch.ones(4, 5, 6, dtype=torch.bool)) is None


def test_scattered_ignore_voxels_are_scored_as_one_unit():
    region = torch.ones(4, 5, 6, dtype=torch.bool)
    region[1, 2, 3] = False
    assert slicing_axis(region) is None


def test_explicit_slice_axis_matches_the_found_one():
    logits, targets = sparse_sample()
    found = build_loss("merged_dice")(logits, targets)
    torch.testing.assert_close(build_loss("merged_dice", slice_axis=0)(logits, targets), found)


def test_a_full_label_patch_hanging_over_the_image_border_is_scored_per_volume_not_per_slice():
    # the patch overhangs the image along the first axis: region False on the padded slab, a stack of whole slices
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 3, 6, 5, 4, generator=gen)
    labels = torch.randint(0, 3, (1, 6, 5, 4), generator=gen)
    region = torch.ones(1, 6, 5, 4, dtype=torch.bool)
    region[:, 4:] = False
    labels[~region] = 0
    dice = build_loss("merged_dice")
    inside = dice(logits[:, :, :4], Targets(labels[:, :4], region[:, :4], identity_tables(1, 3)))
    not_sparse = dice(logits, Targets(labels, region, identity_tables(1, 3), torch.tensor([False])))
    torch.testing.assert_close(not_sparse, inside)
    sparse = dice(logits, Targets(labels, region, identity_tables(1, 3), torch.tensor([True])))
    assert abs(sparse.item() - inside.item()) > 1e-4  # a sparse sample's region is read as annotated slices


def test_merged_dice_smoothing_constant_is_one_by_default():
    # an empty sample prediction-wise: every group absent -> Dice = eps / (sum p + eps) with eps = 1
    logits = torch.zeros(1, 2, 1, 2)  # p = 0.5 everywhere
    labels = torch.zeros(1, 1, 2, dtype=torch.long)
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), identity_tables(1, 2))
    background = (2 * 1.0 + 1) / (1.0 + 2 + 1)
    organ = 1 / (1.0 + 1)
    assert build_loss("merged_dice")(logits, targets).item() == pytest.approx(1 - (background + organ) / 2)
