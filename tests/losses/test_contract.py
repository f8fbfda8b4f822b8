"""Every registered loss: a finite scalar with finite gradients, in 2D and 3D, in float32 and under autocast."""

import pytest
import torch
from torch import nn

from tests.losses.helpers import random_batch
from unimos.errors import UnimosError
from unimos.losses import LOSSES, build_loss

COMPOUND = ["ignore", "naive", "naive_focal_dice", "partial", "partial_focal_dice"]


def test_importing_losses_registers_every_method():
    assert set(LOSSES.names()) == {"partial_ce", "partial_focal", "merged_dice", "entropy", "exclusion",
                                   "partial", "partial_focal_dice", "naive", "naive_focal_dice", "ignore"}


def test_unknown_loss_name_raises_a_readable_error():
    with pytest.raises(UnimosError, match="partial_ce"):
        build_loss("no_such_loss")


@pytest.mark.parametrize("spatial", [(6, 5), (4, 5, 6)])
@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_gives_a_finite_scalar_with_gradients(name, spatial):
    logits, targets = random_batch(spatial)
    logits.requires_grad_(True)
    loss = build_loss(name)(logits, targets)
    loss.backward()
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_is_zero_or_finite_on_a_batch_without_annotation(name):
    logits, targets = random_batch((4, 4))
    targets.region[:] = False
    logits.requires_grad_(True)
    loss = build_loss(name)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", LOSSES.names())
def test_autocast_low_precision_does_not_give_nan(name, dtype):
    logits, targets = random_batch((4, 6, 6), seed=7)
    head = nn.Conv3d(4, 4, 1)
    with torch.autocast(device_type="cpu", dtype=dtype):
        outputs = head(logits * 30)  # large logits: float16 softmax sums would overflow
        loss = build_loss(name)([outputs, outputs[:, :, ::2, ::2, ::2]], targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


@pytest.mark.parametrize("name", COMPOUND)
def test_compound_losses_add_weighted_entropy_and_exclusion(name):
    logits, targets = random_batch((4, 5, 6))
    base = build_loss(name)(logits, targets)
    reading = targets.naive() if name == "naive" else targets
    entropy = build_loss("entropy")(logits, reading)
    exclusion = build_loss("exclusion")(logits, reading)
    weighted = build_loss(name, entropy_weight=0.5, exclusion_weight=2.0)(logits, targets)
    torch.testing.assert_close(weighted, base + 0.5 * entropy + 2.0 * exclusion)


def test_labels_of_another_integer_dtype_and_uint8_region_are_accepted():
    logits, targets = random_batch((4, 4))
    expected = build_loss("partial")(logits, targets)
    targets.labels = targets.labels.to(torch.uint8)
    targets.region = targets.region.to(torch.uint8)
    torch.testing.assert_close(build_loss("partial")(logits, targets), expected)


def test_mismatched_shapes_raise_a_clear_error():
    logits, targets = random_batch((4, 4))
    with pytest.raises(ValueError, match="must be"):
        build_loss("partial")(logits[:, :, :2], targets)
