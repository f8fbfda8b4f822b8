import pytest
import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss

from tests.losses.helpers import identity_tables, partial_table
from unimos.losses import Targets, build_loss


def partial_sample(seed: int = 5) -> tuple[torch.Tensor, Targets]:
    """A liver-only (class 1 of 0..3) 3D sample: voxels labeled 0 may be background, 2 or 3."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 3, 4, 5, generator=gen)
    labels = torch.randint(0, 2, (2, 3, 4, 5), generator=gen)
    tables = partial_table(4, {1}).expand(2, 4, 4).clone()
    return logits, Targets(labels, torch.ones_like(labels, dtype=torch.bool), tables)


@pytest.mark.parametrize("naive_name, partial_name", [("naive", "partial"),
                                                     ("naive_focal_dice", "partial_focal_dice")])
def test_naive_treats_unannotated_as_background(naive_name, partial_name):
    logits, targets = partial_sample()
    with_identity = Targets(targets.labels, targets.region, identity_tables(2, 4))
    naive = build_loss(naive_name)(logits, targets)
    torch.testing.assert_close(naive, build_loss(partial_name)(logits, with_identity))
    assert abs(naive.item() - build_loss(partial_name)(logits, targets).item()) > 1e-3


def test_naive_cross_entropy_part_is_plain_cross_entropy():
    logits, targets = partial_sample()
    with_identity = Targets(targets.labels, targets.region, identity_tables(2, 4))
    dice = build_loss("merged_dice")(logits, with_identity)
    torch.testing.assert_close(build_loss("naive")(logits, targets) - dice, F.cross_entropy(logits, targets.labels))


def test_naive_focal_dice_is_focal_cross_entropy_plus_dice_by_hand():
    """One voxel, two classes, logits (0, ln 3): p = (1/4, 3/4); label 1 gives focal -(1/4)^2 ln(3/4).
    Dice (eps 1), per class: background (0 + 1) / (1/4 + 0 + 1) = 4/5, class 1 (3/2 + 1) / (3/4 + 1 + 1) = 10/11."""
    import math

    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1)
    labels = torch.tensor([[[1]]])
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), partial_table(2, {1}).unsqueeze(0))
    focal = -(0.25 ** 2) * math.log(0.75)
    dice = 1 - (4 / 5 + 10 / 11) / 2
    assert build_loss("naive_focal_dice")(logits, targets).item() == pytest.approx(focal + dice, rel=1e-5)


def test_ignore_skips_ambiguous_voxels():
    logits, targets = partial_sample()
    ambiguous = targets.labels == 0  # candidate set {0, 2, 3}
    logits.requires_grad_(True)
    loss = build_loss("ignore")(logits, targets)
    loss.backward()
    assert (logits.grad.movedim(1, -1)[ambiguous] == 0).all()
    assert (logits.grad.movedim(1, -1)[~ambiguous] != 0).any()
    changed = logits.detach().clone()
    changed.movedim(1, -1)[ambiguous] = torch.randn(int(ambiguous.sum()), 4) * 10
    torch.testing.assert_close(build_loss("ignore")(changed, targets), loss.detach())


def test_ignore_is_cross_entropy_plus_dice_on_singleton_voxels():
    logits, targets = partial_sample()
    known = targets.labels != 0  # liver voxels: candidate set {1}
    expected_ce = F.cross_entropy(logits, targets.labels.masked_fill(~known, -100))
    one_hot = F.one_hot(targets.labels, 4).movedim(-1, 1).float()
    expected_dice = MaskedDiceLoss(softmax=True, smooth_nr=1.0, smooth_dr=1.0)(logits, one_hot, known.unsqueeze(1))
    torch.testing.assert_close(build_loss("ignore")(logits, targets), expected_ce + expected_dice)


def test_ignore_equals_naive_on_full_labels():
    logits, targets = partial_sample()
    full = Targets(targets.labels, targets.region, identity_tables(2, 4))
    torch.testing.assert_close(build_loss("ignore")(logits, full), build_loss("naive")(logits, full))
