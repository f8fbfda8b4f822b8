import pytest
import torch

from tests.losses.helpers import random_batch
from unimos.losses import LOSSES, build_loss
from unimos.losses.deep_supervision import deep_supervision_weights, downsample_targets


def test_deep_supervision_weights_halve_per_level_and_sum_to_one():
    assert deep_supervision_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert deep_supervision_weights(1) == [1.0]


def test_targets_are_downsampled_by_nearest_neighbour():
    _, targets = random_batch((8, 6, 4))
    half = downsample_targets(targets, (4, 3, 2))
    assert torch.equal(half.labels, targets.labels[:, ::2, ::2, ::2])
    assert torch.equal(half.region, targets.region[:, ::2, ::2, ::2])
    assert half.labels.dtype == torch.int64 and half.region.dtype == torch.bool
    assert torch.equal(half.tables, targets.tables)


@pytest.mark.parametrize("name", ["partial", "partial_focal_dice", "naive", "naive_focal_dice", "ignore"])
def test_deep_supervision_list_is_the_weighted_sum_over_levels(name):
    logits, targets = random_batch((8, 8, 4))
    levels = [logits, logits[:, :, ::2, ::2, ::2] * 0.5, logits[:, :, ::4, ::4, ::4] * 0.25]
    loss = build_loss(name)
    expected = sum(w * loss(level, downsample_targets(targets, level.shape[2:]))
                   for w, level in zip([4 / 7, 2 / 7, 1 / 7], levels))
    torch.testing.assert_close(loss(levels, targets), expected)


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_accepts_a_deep_supervision_list(name):
    logits, targets = random_batch((8, 6))
    levels = [logits.clone().requires_grad_(True), logits[:, :, ::2, ::2].clone().requires_grad_(True)]
    loss = build_loss(name)(levels, targets)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(level.grad is not None and torch.isfinite(level.grad).all() for level in levels)
