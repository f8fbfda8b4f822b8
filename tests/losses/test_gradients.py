import pytest

from tests.losses.helpers import random_batch
from unimos.losses import LOSSES, build_loss

# entropy is class-agnostic by design (paper 002, sec. 3.4): it acts on every voxel, annotated or not
USES_REGION_ONLY = [name for name in LOSSES.names() if name != "entropy"]


@pytest.mark.parametrize("spatial", [(6, 5), (4, 5, 6)])
@pytest.mark.parametrize("name", USES_REGION_ONLY)
def test_voxels_off_annotated_slices_get_exactly_zero_gradient(name, spatial):
    logits, targets = random_batch(spatial)
    logits.requires_grad_(True)
    build_loss(name)(logits, targets).backward()
    grad = logits.grad.movedim(1, -1)
    assert (grad[~targets.region] == 0).all()
    assert (grad[targets.region] != 0).any()


@pytest.mark.parametrize("name", ["partial", "partial_focal_dice", "naive", "naive_focal_dice", "ignore"])
def test_exclusion_term_keeps_off_region_gradient_exactly_zero(name):
    logits, targets = random_batch((4, 5, 6))
    logits.requires_grad_(True)
    build_loss(name, exclusion_weight=0.5)(logits, targets).backward()
    assert (logits.grad.movedim(1, -1)[~targets.region] == 0).all()


def test_deep_supervision_keeps_off_region_gradient_exactly_zero_at_full_resolution():
    logits, targets = random_batch((8, 8, 8))
    full = logits.clone().requires_grad_(True)
    half = logits[:, :, ::2, ::2, ::2].clone().requires_grad_(True)
    build_loss("partial")([full, half], targets).backward()
    assert (full.grad.movedim(1, -1)[~targets.region] == 0).all()
