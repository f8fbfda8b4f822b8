"""Every registered strategy: one step on real tiny networks gives a finite loss whose gradient reaches every trained
parameter of every network; a short run through the one training loop finishes, checkpoints and resumes."""

import numpy as np
import pytest
import torch

import unimos.strategies  # noqa: F401  (registers)
from tests.strategies.helpers import tiny_batches
from unimos.losses.targets import targets_of
from unimos.strategies.base import STRATEGIES
from unimos.training.config import TrainConfig
from unimos.training.loop import build_strategy, train

PER_STEP = sorted(name for name in STRATEGIES.names() if not getattr(STRATEGIES.get(name), "multi_round", False))


@pytest.mark.parametrize("deep_supervision", [False, True])
@pytest.mark.parametrize("name", PER_STEP)
def test_a_step_reaches_every_trained_parameter(name, deep_supervision, tiny_cache):
    cases, plan = tiny_cache
    config = TrainConfig(strategy=name, deep_supervision=deep_supervision, seed=1)
    strategy = build_strategy(config, plan, 1, len(plan.classes) + 1)
    strategy.train()
    labeled, unlabeled = tiny_batches(cases, plan)
    torch.manual_seed(0)
    out = strategy.step(labeled, unlabeled if strategy.needs_unlabeled else None, 5, 10)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    trained = [(n, p) for n, p in strategy.named_parameters() if p.requires_grad]
    assert trained
    missing = [n for n, p in trained if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert all(np.isfinite(v) for v in out.logs.values())
    # the run report's "Supervised and unsupervised loss" panel draws these two columns of log.csv
    expected_logs = {"loss_labeled", "loss_unlabeled"} if strategy.needs_unlabeled else {"loss_labeled"}
    assert expected_logs <= set(out.logs), sorted(out.logs)


# Options that leave only the segmentation loss on a labeled batch: unimatch would also pseudo-label the unknown
# classes of partially labeled samples, guided_cps adds its labeled Gaussian terms (paper 003, eqs. 5-7).
LABELED_ONLY = {"unimatch": {"use_partial": False}, "guided_cps": {"gt_weight": 0.0, "self_weight": 0.0,
                                                                   "max_weight": 0.0}}


@pytest.mark.parametrize("name", PER_STEP)
def test_a_step_without_an_unlabeled_batch_is_the_supervised_part(name, tiny_cache):
    cases, plan = tiny_cache
    config = TrainConfig(strategy=name, strategy_options=LABELED_ONLY.get(name, {}))
    strategy = build_strategy(config, plan, 1, len(plan.classes) + 1)
    labeled, _ = tiny_batches(cases, plan)
    out = strategy.step(labeled, None, 0, 10)
    trained = [net for net in strategy.nets.values() if any(p.requires_grad for p in net.parameters())]
    with torch.no_grad():  # every trained network's supervised loss on the same batch, as the supervised step has it
        expected = sum(strategy.loss(net(labeled["image"]), targets_of(labeled)) for net in trained)
    assert torch.allclose(out.loss.detach(), expected, rtol=1e-5, atol=1e-6), (float(out.loss), float(expected))


@pytest.mark.parametrize("name", PER_STEP)
def test_the_training_loop_runs_and_resumes_every_strategy(name, tiny_cache, tmp_path):
    cases, plan = tiny_cache
    config = TrainConfig(strategy=name, iterations=4, checkpoint_every=0, seed=3, device="cpu")
    whole = train(cases, plan, config, tmp_path / "whole")
    assert len(whole.losses) == 4 and all(np.isfinite(whole.losses))
    first = train(cases, plan, config, tmp_path / "parts", stop_after=2)
    second = train(cases, plan, config, tmp_path / "parts", resume=True)
    assert np.allclose(first.losses + second.losses, whole.losses, rtol=1e-4, atol=1e-5)


def test_unknown_strategy_options_are_refused_with_the_known_ones(tiny_cache):
    from unimos.errors import UnimosError

    _, plan = tiny_cache
    with pytest.raises(UnimosError, match="tau=0.95"):
        build_strategy(TrainConfig(strategy="unimatch", strategy_options={"taux": 0.9}), plan, 1, 3)
