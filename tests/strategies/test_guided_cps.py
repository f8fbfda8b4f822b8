"""`guided_cps` (GuidedNet, paper 003): a step on tiny real networks, 3D and 2D, with and without deep supervision."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import unimos.losses  # noqa: F401  (registers losses)
from unimos.losses.registry import build_loss
from unimos.networks.registry import build_network
from unimos.strategies.base import STRATEGIES
from unimos.strategies.cps import CrossPseudoSupervision
from unimos.strategies.guided_cps import GuidedCrossPseudoSupervision, logits_and_features  # registers guided_cps
from unimos.training.config import TrainConfig
from unimos.training.loop import build_strategy

NUM_CLASSES = 3
TINY = {
    3: {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 3,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "filters": [4, 8, 8]},
    2: {"name": "pipofan2d", "spatial_dims": 2, "filters": [4, 8, 8]},
}
SPATIAL = {3: (16, 16, 16), 2: (16, 16)}
GAUSSIAN_WEIGHTS = ("gt_weight", "self_weight", "max_weight", "cons_weight", "rectify_weight")


def tiny_nets(dims: int = 3, deep_supervision: bool = False) -> dict[str, nn.Module]:
    nets = {}
    for seed, name in enumerate(("main", "second")):
        torch.manual_seed(seed)
        nets[name] = build_network({**TINY[dims], "deep_supervision": deep_supervision}, 1, NUM_CLASSES)
    return nets


def batches(dims: int = 3, classes: tuple[int, ...] = (0, 1, 2), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    spatial = SPATIAL[dims]
    choice = torch.tensor(classes)[torch.randint(0, len(classes), (2, *spatial), generator=generator)]
    labeled = {"image": torch.randn(2, 1, *spatial, generator=generator), "label": choice,
               "region": torch.ones(2, *spatial, dtype=torch.bool),
               "tables": torch.eye(NUM_CLASSES, dtype=torch.bool).expand(2, -1, -1).clone()}
    unlabeled = {"image": torch.randn(2, 1, *spatial, generator=generator)}
    return labeled, unlabeled


def strategy_for(nets, **options) -> GuidedCrossPseudoSupervision:
    return GuidedCrossPseudoSupervision(nets, build_loss("partial"), {"max_voxels": 512, **options})


def assert_every_parameter_gets_a_finite_gradient(strategy: nn.Module) -> None:
    for name, parameter in strategy.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


def test_guided_cps_is_registered_with_a_second_network():
    cls = STRATEGIES.get("guided_cps")
    assert cls is GuidedCrossPseudoSupervision
    assert cls.needs_unlabeled and cls.extra_networks == ("second",)


@pytest.mark.parametrize("dims, deep_supervision", [(3, False), (3, True), (2, False)])
def test_a_step_gives_a_finite_loss_whose_gradient_reaches_both_networks(dims, deep_supervision):
    strategy = strategy_for(tiny_nets(dims, deep_supervision)).train()
    labeled, unlabeled = batches(dims)
    out = strategy.step(labeled, unlabeled, step=5, total_steps=10)
    assert torch.isfinite(out.loss)
    expected_terms = {"loss_labeled", "loss_gt", "loss_self", "loss_max", "loss_cps", "loss_cons", "loss_rectify"}
    assert expected_terms <= set(out.logs)
    out.loss.backward()
    assert_every_parameter_gets_a_finite_gradient(strategy)


def test_builds_through_the_training_loop_factory():
    config = TrainConfig(strategy="guided_cps", strategy_options={"max_voxels": 256})
    strategy = build_strategy(config, {"network": TINY[3]}, in_channels=1, num_classes=NUM_CLASSES).train()
    assert set(strategy.nets) == {"main", "second"}
    out = strategy.step(*batches(3), step=0, total_steps=10)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert_every_parameter_gets_a_finite_gradient(strategy)


def test_a_class_missing_from_the_labeled_batch_leaves_the_loss_finite():
    strategy = strategy_for(tiny_nets()).train()
    labeled, unlabeled = batches(classes=(0, 2))  # class 1 absent
    out = strategy.step(labeled, unlabeled, step=10, total_steps=10)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert_every_parameter_gets_a_finite_gradient(strategy)


def test_a_single_class_batch_has_no_mean_separation_term():
    strategy = strategy_for(tiny_nets()).train()
    labeled, unlabeled = batches(classes=(0,))
    out = strategy.step(labeled, unlabeled, step=10, total_steps=10)
    assert torch.isfinite(out.loss) and out.logs["loss_max"] == 0.0


def test_without_unlabeled_batch_only_the_labeled_terms_remain():
    strategy = strategy_for(tiny_nets()).train()
    labeled, _ = batches()
    out = strategy.step(labeled, None, step=10, total_steps=10)
    assert set(out.logs) == {"loss_labeled", "loss_gt", "loss_self", "loss_max"}
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert_every_parameter_gets_a_finite_gradient(strategy)


def test_a_batch_without_known_voxels_falls_back_to_cps():
    strategy = strategy_for(tiny_nets()).train()
    labeled, unlabeled = batches()
    labeled["region"][:] = False  # nothing annotated: no voxel's class is known, no Gaussians can be fitted
    out = strategy.step(labeled, unlabeled, step=10, total_steps=10)
    assert torch.isfinite(out.loss)
    assert "loss_gt" not in out.logs and "loss_cons" not in out.logs and "loss_cps" in out.logs


@pytest.mark.parametrize("class_weights", ["distdw", "none"])
def test_with_the_gaussian_weights_at_zero_it_is_cps(class_weights):
    nets = tiny_nets()
    labeled, unlabeled = batches()
    guided = strategy_for(nets, class_weights=class_weights, **{k: 0.0 for k in GAUSSIAN_WEIGHTS}).train()
    plain = CrossPseudoSupervision(nets, build_loss("partial"), {"class_weights": class_weights}).train()
    expected = plain.step(labeled, unlabeled, step=3, total_steps=10).loss
    assert torch.allclose(guided.step(labeled, unlabeled, step=3, total_steps=10).loss, expected, rtol=1e-5)


def test_features_come_through_forward_so_that_a_ddp_wrapper_would_sync_them():
    net = tiny_nets()["main"]
    image = batches()[1]["image"]
    logits, features = logits_and_features(net, image)
    expected_logits, expected_features = net.forward_with_features(image)
    assert torch.allclose(logits, expected_logits) and torch.allclose(features, expected_features)
    (logits.mean() + features.mean()).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_gaussian_rampup_scales_the_labeled_gaussian_terms_by_the_sigmoid_ramp():
    nets = tiny_nets()
    labeled, unlabeled = batches()

    def loss(step, **options):
        torch.manual_seed(0)  # the voxels drawn for the Gaussian terms
        return float(strategy_for(nets, **options).train().step(labeled, unlabeled, step, total_steps=10).loss.detach())

    labeled_terms = {"gt_weight": 0.0, "self_weight": 0.0, "max_weight": 0.0}
    without = loss(0, **labeled_terms)
    unramped = loss(0) - without
    ramped = loss(0, gaussian_rampup=1.0) - without
    assert unramped > 0 and abs(ramped - math.exp(-5.0) * unramped) < 1e-4 * unramped
    assert abs(loss(10, gaussian_rampup=1.0) - loss(10)) < 1e-6  # the ramp has ended
