"""DistDW class weights of the cross pseudo-label loss (paper 003's released KT-CPS code), by hand."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unimos.errors import UnimosError
from unimos.losses.targets import Targets
from unimos.networks.checkpoint import load_tensors
from unimos.strategies.class_weights import (
    LearnedClassWeights,
    correct_counts,
    distribution_weights,
    known_class_map,
    weighted_cross_entropy,
)
from unimos.training.config import TrainConfig
from unimos.training.loop import build_strategy, train


def full_targets(labels: torch.Tensor, classes: int) -> Targets:
    tables = torch.eye(classes, dtype=torch.bool).expand(labels.shape[0], -1, -1).clone()
    return Targets(labels=labels, region=torch.ones_like(labels, dtype=torch.bool), tables=tables)


def logits_predicting(predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, C, *S) logits whose argmax is `predicted`."""
    return F.one_hot(predicted, classes).movedim(-1, 1).float() * 5.0


def test_weights_are_class_count_times_log_ratio_over_the_largest_log_ratio():
    # log(100/100), log(100/10), log(100/1) = 0, ln 10, ln 100 -> 3 * (0, 1/2, 1)
    weights = distribution_weights(torch.tensor([100.0, 10.0, 1.0]))
    assert torch.allclose(weights, torch.tensor([0.0, 1.5, 3.0]), atol=1e-6)


def test_equal_counts_give_equal_weights_and_a_class_never_seen_the_largest():
    assert torch.equal(distribution_weights(torch.tensor([7.0, 7.0])), torch.ones(2))
    weights = distribution_weights(torch.tensor([1000.0, 10.0, 0.0]))
    assert math.isclose(float(weights[2]), 3.0, rel_tol=1e-6) and float(weights[0]) == 0.0
    assert 0.0 < float(weights[1]) < 1.0  # ln(100) / ln(1000 / 1e-8) * 3


def test_correct_counts_count_wrong_voxels_as_background():
    labels = torch.tensor([[0, 1, 1, 2, 2, 2]])
    predicted = torch.tensor([[0, 1, 0, 2, 2, 1]])  # one voxel of class 1 and one of class 2 predicted wrong
    counts = correct_counts(logits_predicting(predicted, 3), full_targets(labels, 3))
    assert counts.tolist() == [3, 1, 2]


def test_voxels_of_unknown_class_are_not_counted_as_any_organ():
    labels = torch.tensor([[0, 1, 0, 0]])
    tables = torch.eye(3, dtype=torch.bool).unsqueeze(0).clone()
    tables[0, 0, 2] = True  # partial label: class 2 not annotated, background merged with it
    targets = Targets(labels=labels, region=torch.tensor([[True, True, True, False]]), tables=tables)
    assert known_class_map(targets).tolist() == [[-1, 1, -1, -1]]
    counts = correct_counts(logits_predicting(torch.tensor([[2, 1, 2, 2]]), 3), targets)
    assert counts.tolist() == [3, 1, 0]


def test_weighted_cross_entropy_is_the_weighted_mean_and_zero_weight_drops_a_class():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (2, 4, 4), generator=generator)
    plain = F.cross_entropy(logits, labels)
    assert torch.allclose(weighted_cross_entropy(logits, labels, torch.ones(3)), plain)
    expected = F.cross_entropy(logits, labels, weight=torch.tensor([0.0, 2.0, 5.0]))
    assert torch.allclose(weighted_cross_entropy(logits, labels, torch.tensor([0.0, 2.0, 5.0])), expected)
    only_background = torch.zeros_like(labels)
    assert float(weighted_cross_entropy(logits, only_background, torch.tensor([0.0, 1.0, 1.0]))) == 0.0


def test_learned_weights_start_from_label_frequencies_and_move_by_one_minus_momentum():
    labels = torch.tensor([[0] * 90 + [1] * 9 + [2]])
    targets = full_targets(labels, 3)
    predicted = torch.zeros_like(labels)  # nothing but background predicted: every organ counted 0 times right
    learned = LearnedClassWeights(momentum=0.9)
    start = distribution_weights(torch.tensor([90.0, 9.0, 1.0]))
    now = learned.update(logits_predicting(predicted, 3), targets)
    current = distribution_weights(torch.tensor([100.0, 0.0, 0.0]))  # (0, 3, 3)
    assert torch.allclose(now, 0.9 * start + 0.1 * current, atol=1e-6)
    assert torch.allclose(current, torch.tensor([0.0, 3.0, 3.0]), atol=1e-6)


def test_an_unknown_class_weighting_is_refused_with_the_known_ones(tiny_cache):
    _, plan = tiny_cache
    with pytest.raises(UnimosError, match="none, distdw"):
        build_strategy(TrainConfig(strategy="cps", strategy_options={"class_weights": "dhc"}), plan, 1, 3)


def test_learned_weights_are_checkpointed_and_a_resumed_run_continues_with_them(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    config = TrainConfig(strategy="cps", strategy_options={"class_weights": "distdw", "rampup": 0.0, "weight": 1.0},
                         iterations=4, checkpoint_every=0, seed=2, device="cpu")
    whole = train(cases, plan, config, tmp_path / "whole")
    saved = load_tensors(whole.checkpoint)
    assert {"extra.strategy.class_weights.main", "extra.strategy.class_weights.second"} <= set(saved)
    first = train(cases, plan, config, tmp_path / "parts", stop_after=2)
    second = train(cases, plan, config, tmp_path / "parts", resume=True)
    assert np.allclose(first.losses + second.losses, whole.losses, rtol=1e-5, atol=1e-6)
    resumed = load_tensors(second.checkpoint)
    assert torch.allclose(resumed["extra.strategy.class_weights.main"], saved["extra.strategy.class_weights.main"])
