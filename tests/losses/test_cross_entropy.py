import math

import pytest
import torch
import torch.nn.functional as F

from tests.losses.helpers import identity_tables, partial_table
from unimos.losses import Targets, build_loss


@pytest.mark.parametrize("spatial", [(6, 5), (3, 4, 5)])
def test_partial_ce_equals_cross_entropy_when_all_classes_annotated(spatial):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, *spatial, generator=gen) * 3
    labels = torch.randint(0, 5, (2, *spatial), generator=gen)
    targets = Targets(labels, torch.ones_like(labels, dtype=torch.bool), identity_tables(2, 5))
    loss = build_loss("partial_ce")(logits, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))


def three_voxels() -> tuple[torch.Tensor, Targets, list[list[float]]]:
    """Three voxels, three classes; class 2 is unannotated, so a voxel labeled 0 has candidate set {0, 2}."""
    rows = [[1.0, 2.0, 0.5], [0.2, -1.0, 3.0], [-0.5, 0.0, 0.5]]
    logits = torch.tensor(rows).T.reshape(1, 3, 1, 3)
    labels = torch.tensor([[[0, 1, 0]]])
    table = partial_table(3, annotated={1}).unsqueeze(0)
    return logits, Targets(labels, torch.ones_like(labels, dtype=torch.bool), table), rows


def softmax_by_hand(row: list[float]) -> list[float]:
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


def test_partial_ce_three_voxel_example_by_hand():
    logits, targets, rows = three_voxels()
    p = [softmax_by_hand(row) for row in rows]
    expected = (-math.log(p[0][0] + p[0][2]) - math.log(p[1][1]) - math.log(p[2][0] + p[2][2])) / 3
    assert build_loss("partial_ce")(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_partial_focal_three_voxel_example_by_hand():
    logits, targets, rows = three_voxels()
    p = [softmax_by_hand(row) for row in rows]
    merged = [p[0][0] + p[0][2], p[1][1], p[2][0] + p[2][2]]
    expected = sum(-((1 - q) ** 2) * math.log(q) for q in merged) / 3
    assert build_loss("partial_focal")(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    gamma_half = sum(-((1 - q) ** 0.5) * math.log(q) for q in merged) / 3
    assert build_loss("partial_focal", gamma=0.5)(logits, targets).item() == pytest.approx(gamma_half, rel=1e-6)


def test_partial_ce_averages_over_annotated_region_only():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 4, generator=gen)
    labels = torch.randint(0, 3, (2, 4, 4), generator=gen)
    region = torch.rand(2, 4, 4, generator=gen) > 0.4
    loss = build_loss("partial_ce")(logits, Targets(labels, region, identity_tables(2, 3)))
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels.masked_fill(~region, -100)))


def test_partial_ce_is_finite_for_extreme_logits():
    logits, targets, _ = three_voxels()
    logits = logits * 1e4  # naive softmax-then-log would give log(0) = -inf here
    logits.requires_grad_(True)
    for name in ("partial_ce", "partial_focal"):
        loss = build_loss(name)(logits, targets)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_partial_ce_of_a_voxel_whose_candidates_are_every_class_is_zero():
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    table = torch.ones(1, 3, 3, dtype=torch.bool)
    loss = build_loss("partial_ce")(logits, Targets(labels, torch.ones(1, 2, 2, dtype=torch.bool), table))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("scale", [1.0, 30.0, 300.0])
def test_partial_ce_equals_the_log_sum_exp_form_with_its_gradient(scale):
    """The dense softmax form agrees with -log sum exp over the candidates, also where the candidate mass underflows
    (scale 300: log p_iS far below -46, taken by the exact fallback, not clamped)."""
    from unimos.losses.cross_entropy import candidate_log_prob

    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64) * scale).float().requires_grad_(True)
    labels = torch.randint(0, 5, (2, 3, 4), generator=gen)
    tables = identity_tables(2, 5)
    tables[1] = partial_table(5, {1, 2})
    region = torch.rand(2, 3, 4, generator=gen) > 0.3
    targets = Targets(labels.masked_fill(~region, 0), region, tables)
    loss = build_loss("partial_ce")(logits, targets)
    (grad,) = torch.autograd.grad(loss, logits)

    reference_logits = logits.detach().clone().requires_grad_(True)
    log_prob = candidate_log_prob(reference_logits, targets.candidates())
    reference = -(log_prob * region).sum() / region.sum()
    (reference_grad,) = torch.autograd.grad(reference, reference_logits)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-6)
    if scale == 300.0:
        assert -float(log_prob[region].min()) > 100  # the fallback was needed and kept the true size
