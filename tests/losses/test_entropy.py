import math

import pytest
import torch

from tests.losses.helpers import identity_tables, logits_from_probs
from unimos.losses import Targets, build_loss


def two_samples(labels: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, Targets]:
    """Sample 0 predicts (1/3, 1/3, 1/3) everywhere, sample 1 (1/2, 1/4, 1/4)."""
    uniform = logits_from_probs([[1 / 3] * 3] * 4, (2, 2))
    peaked = logits_from_probs([[0.5, 0.25, 0.25]] * 4, (2, 2))
    return torch.cat([uniform, peaked]), Targets(labels, region, identity_tables(2, 3))


def test_entropy_weight_three_without_annotation():
    labels = torch.zeros(2, 2, 2, dtype=torch.long)
    labels[0, 0, 0] = 1  # sample 0 holds an annotated organ voxel; sample 1 only background
    logits, targets = two_samples(labels, torch.ones(2, 2, 2, dtype=torch.bool))
    entropy_uniform = math.log(3)
    entropy_peaked = 0.5 * math.log(2) + 2 * 0.25 * math.log(4)
    expected = (1 * entropy_uniform + 3 * entropy_peaked) / 2
    assert build_loss("entropy")(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_entropy_counts_an_organ_label_outside_the_region_as_no_annotation():
    labels = torch.ones(2, 2, 2, dtype=torch.long)
    region = torch.zeros(2, 2, 2, dtype=torch.bool)
    region[0] = True
    logits, targets = two_samples(labels, region)
    entropy_peaked = 1.5 * math.log(2)
    expected = (math.log(3) + 3 * entropy_peaked) / 2
    assert build_loss("entropy")(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_entropy_is_zero_for_confident_predictions():
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 1] = 50.0
    targets = Targets(torch.zeros(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.bool),
                      identity_tables(1, 3))
    assert build_loss("entropy")(logits, targets).item() == pytest.approx(0.0, abs=1e-12)
