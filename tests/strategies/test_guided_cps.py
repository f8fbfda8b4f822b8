"""`guided_cps` (GuidedNet, paper 003): the five Gaussian terms (eqs. 5-9) and the cross pseudo-labels on hand-computed
tiny inputs; a step on tiny real networks, 3D and 2D, with and without deep supervision."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import unimos.losses  # noqa: F401  (registers losses)
from tests.conftest import model_plan
from unimos.errors import UnimosError
from unimos.losses.registry import build_loss
from unimos.networks.registry import build_network
from unimos.strategies.base import STRATEGIES
from unimos.strategies.cps import CrossPseudoSupervision
from unimos.strategies.gaussian_mixture import ClassGaussians, log_posterior
from unimos.strategies.guided_cps import (  # registers guided_cps
    GuidedCrossPseudoSupervision,
    cross_pseudo_loss_from_labels,
    logits_and_features,
    mean_separation_loss,
    posterior_consistency_loss,
    posterior_ground_truth_loss,
    rectified_pseudo_labels,
    rectify_loss,
    self_guidance_loss,
)
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

# The tiny input of the value tests: 2 classes, 1-D features, 3 voxels. Gaussians N(0, 1) and N(2, 1) with equal
# priors: log N1 - log N0 = -(x - 2)^2 / 2 + x^2 / 2 = 2x - 2, so at x = 1 - ln3/2, 1, 1 + ln3/2 the posterior of
# class 1 is sigmoid(-ln3) = 1/4, sigmoid(0) = 1/2, sigmoid(ln3) = 3/4.
HALF_LN3 = math.log(3) / 2
FEATURES = torch.tensor([[1 - HALF_LN3], [1.0], [1 + HALF_LN3]])
POSTERIOR = torch.tensor([[3 / 4, 1 / 4], [1 / 2, 1 / 2], [1 / 4, 3 / 4]])
# network logits whose softmax P is (1/2, 1/2), (3/4, 1/4), (1/4, 3/4)
LOGITS = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [0.0, math.log(3)]])
LN2, LN3 = math.log(2), math.log(3)


def tiny_gaussians() -> ClassGaussians:
    return ClassGaussians(mean=torch.tensor([[0.0], [2.0]]), std=torch.tensor([[1.0], [1.0]]),
                          prior=torch.tensor([0.5, 0.5]), present=torch.tensor([True, True]))


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
    plan = model_plan(network=TINY[3], classes=[{"name": "liver"}, {"name": "spleen"}])
    strategy = build_strategy(config, plan, in_channels=1, num_classes=NUM_CLASSES).train()
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


def test_ground_truth_term_is_the_posteriors_cross_entropy_eq5():
    log_post = log_posterior(FEATURES, tiny_gaussians())
    assert torch.allclose(log_post.exp(), POSTERIOR, atol=1e-6)
    # labels 0, 0, 1: -(ln G_0(x1) + ln G_0(x2) + ln G_1(x3)) / 3 = -(ln 3/4 + ln 1/2 + ln 3/4) / 3 = 0.422837
    expected = (2 * math.log(4 / 3) + LN2) / 3
    assert abs(float(posterior_ground_truth_loss(log_post, torch.tensor([0, 0, 1]))) - expected) < 1e-6


def test_self_guidance_sums_the_binary_cross_entropy_over_classes_eq6():
    # per voxel and class -[g ln p + (1 - g) ln(1 - p)]; with 2 classes class 1's term equals class 0's, so the sum
    # over classes is twice class 0's (averaging over classes, as this code did, would give half of eq. 6):
    #   x1: g = 3/4, p = 1/2: -(3/4 ln 1/2 + 1/4 ln 1/2) = ln 2                 -> 2 ln 2       = 1.386294
    #   x2: g = 1/2, p = 3/4: -(1/2 ln 3/4 + 1/2 ln 1/4) = 1/2 ln 16/3          -> ln 16/3      = 1.673976
    #   x3: g = 1/4, p = 1/4: -(1/4 ln 1/4 + 3/4 ln 3/4) = 1/2 ln 2 + 3/4 ln 4/3 -> ln 2 + 3/2 ln 4/3 = 1.124670
    expected = (2 * LN2 + math.log(16 / 3) + LN2 + 1.5 * math.log(4 / 3)) / 3  # = 1.394980
    assert abs(float(self_guidance_loss(LOGITS, POSTERIOR)) - expected) < 1e-6


def test_self_guidance_teaches_the_network_only():
    posterior = POSTERIOR.clone().requires_grad_(True)
    logits = LOGITS.clone().requires_grad_(True)
    self_guidance_loss(logits, posterior).backward()
    assert posterior.grad is None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_mean_separation_of_two_one_dimensional_means_eq7():
    # K = 2: 2 / (K (K - 1)) = 1, one pair: exp(-(0 - 2)^2) = e^-4 = 0.018316
    assert abs(float(mean_separation_loss(tiny_gaussians())) - math.exp(-4)) < 1e-7


def test_mean_separation_sums_squares_over_channels_and_averages_over_present_pairs_eq7():
    # present means (0, 0), (1, 1), (0, 3); the second class has no voxels and no mean, so K = 3
    # squared distances summed over channels: 1 + 1 = 2, 0 + 9 = 9, 1 + 4 = 5; 2 / (3 * 2) = 1/3 of the pair sum
    means = torch.tensor([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [0.0, 3.0]])
    gaussians = ClassGaussians(mean=means, std=torch.ones(4, 2), prior=torch.tensor([0.4, 0.0, 0.3, 0.3]),
                               present=torch.tensor([True, False, True, True]))
    expected = (math.exp(-2) + math.exp(-9) + math.exp(-5)) / 3  # = 0.047399
    assert abs(float(mean_separation_loss(gaussians)) - expected) < 1e-7


def test_posterior_consistency_is_the_mean_squared_difference_eq8():
    other = torch.tensor([[1 / 2, 1 / 2], [1 / 2, 1 / 2], [1.0, 0.0]])
    # differences (1/4, -1/4), (0, 0), (-3/4, 3/4): squares 1/16 + 1/16 + 0 + 0 + 9/16 + 9/16 = 20/16 over 6 = 5/24
    assert abs(float(posterior_consistency_loss(POSTERIOR, other)) - 5 / 24) < 1e-7


def test_rectify_is_each_networks_cross_entropy_against_its_own_gaussian_argmax_eq9():
    # network A: P = (1/2, 1/2), (3/4, 1/4), (1/4, 3/4); its posterior's argmax 0, 1, 1
    #   CE = -(ln 1/2 + ln 1/4 + ln 3/4) / 3 = ln(32/3) / 3 = 0.789041
    # network B: P = (3/4, 1/4), (1/2, 1/2), (1/2, 1/2); its posterior's argmax 0, 0, 1
    #   CE = -(ln 3/4 + ln 1/2 + ln 1/2) / 3 = ln(16/3) / 3 = 0.557992
    log_post_a = torch.log(torch.tensor([[0.75, 0.25], [0.25, 0.75], [0.25, 0.75]]))
    log_post_b = torch.log(torch.tensor([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75]]))
    logits_b = torch.tensor([[LN3, 0.0], [0.0, 0.0], [0.0, 0.0]])
    rectify = rectify_loss(LOGITS, log_post_a) + rectify_loss(logits_b, log_post_b)
    assert abs(float(rectify) - (math.log(32 / 3) + math.log(16 / 3)) / 3) < 1e-6  # = 1.347033


def test_rectified_cross_labels_follow_softmax_times_likelihood_and_keep_classes_without_a_gaussian():
    # class 2 has no labeled voxel, hence no Gaussian; N1 / N0 = exp(2x - 2) as in the tiny input
    gaussians = ClassGaussians(mean=torch.tensor([[0.0], [2.0], [0.0]]), std=torch.tensor([[1.0], [1.0], [0.01]]),
                               prior=torch.tensor([0.5, 0.5, 0.0]), present=torch.tensor([True, True, False]))
    logits = torch.tensor([[0.0, math.log(1.5), 0.0],  # P0 : P1 = 2 : 3, N1/N0 = 1/3 -> 2 : 1, label 0 (network: 1)
                           [LN3, 0.0, 0.0],           # 3 : 1, N1/N0 = 1 -> label 0
                           [0.0, LN3, 0.0],           # 1 : 3, N1/N0 = 3 -> 1 : 9, label 1
                           [0.0, 0.0, 5.0]])          # the network says class 2: no Gaussian to judge it, kept
    features = torch.tensor([[1 - HALF_LN3], [1.0], [1 + HALF_LN3], [0.0]])
    labels = rectified_pseudo_labels(logits.t().reshape(1, 3, 4), features.t().reshape(1, 1, 4), gaussians)
    assert labels.tolist() == [[0, 0, 1, 2]]


def test_cross_pseudo_loss_weighs_each_label_by_its_source_networks_class_weights():
    logits_a = LOGITS.t().reshape(1, 2, 3)  # P = (1/2, 1/2), (3/4, 1/4), (1/4, 3/4)
    logits_b = torch.tensor([[LN3, 0.0], [0.0, 0.0], [0.0, 0.0]]).t().reshape(1, 2, 3)  # (3/4, 1/4), (1/2, 1/2) x 2
    labels_a, labels_b = torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1, 1]])
    # CE(a, labels of b) = ln 2, ln 4, ln 4/3 weighted by b's weights (1, 3): (ln 2 + 3 ln 4 + 3 ln 4/3) / 7
    # CE(b, labels of a) = ln 4/3, ln 2, ln 2 weighted by a's weights (1, 1): ln(16/3) / 3
    expected = (LN2 + 3 * math.log(4) + 3 * math.log(4 / 3)) / 7 + math.log(16 / 3) / 3  # = 1.374432
    loss = cross_pseudo_loss_from_labels(logits_a, logits_b, labels_a, labels_b, torch.tensor([1.0, 1.0]),
                                         torch.tensor([1.0, 3.0]))
    assert abs(float(loss) - expected) < 1e-6
    plain = cross_pseudo_loss_from_labels(logits_a, logits_b, labels_a, labels_b, None, None)
    assert abs(float(plain) - (math.log(32 / 3) + math.log(16 / 3)) / 3) < 1e-6


def test_cross_labels_default_to_the_networks_own_argmax_as_released():
    # kimjisoo12/GuidedNet train_guidedNet_flare.py: max_A = torch.argmax(outputs1.detach(), dim=1, ...)
    assert GuidedCrossPseudoSupervision.defaults["cross_labels"] == "network"
    assert strategy_for(tiny_nets()).options["cross_labels"] == "network"
    with pytest.raises(UnimosError, match="one of network, rectified"):
        strategy_for(tiny_nets(), cross_labels="soft")


def test_rectified_cross_labels_give_a_step_whose_gradient_reaches_both_networks():
    nets = tiny_nets()
    labeled, unlabeled = batches()

    def step(cross_labels):
        torch.manual_seed(0)  # the voxels drawn for the Gaussian terms
        strategy = strategy_for(nets, cross_labels=cross_labels).train()
        return strategy, strategy.step(labeled, unlabeled, step=5, total_steps=10)

    strategy, rectified = step("rectified")
    _, network = step("network")
    assert 0.0 < rectified.logs["share_relabeled"] <= 1.0 and "share_relabeled" not in network.logs
    assert rectified.logs["loss_cps"] != network.logs["loss_cps"]
    assert rectified.logs["loss_rectify"] == network.logs["loss_rectify"]  # only the cross term's labels change
    rectified.loss.backward()
    assert torch.isfinite(rectified.loss)
    assert_every_parameter_gets_a_finite_gradient(strategy)


def test_the_default_cross_term_teaches_background_where_distdw_weighs_it_zero():
    # Both networks call every voxel background. DistDW (the release's KT-CPS weights) gives background, the class
    # predicted right most often, weight 0: the cross term is then 0 and nothing on unlabeled voxels pulls false
    # foreground back (the over-segmentation measured on ACDC). The default, unweighted, is the plain mean CE.
    logits = torch.tensor([[LN3, 0.0], [LN3, 0.0]]).t().reshape(1, 2, 2)  # P(background) = 3/4 at both voxels
    background = torch.zeros((1, 2), dtype=torch.long)
    distdw = cross_pseudo_loss_from_labels(logits, logits, background, background, torch.tensor([0.0, 2.0]),
                                           torch.tensor([0.0, 2.0]))
    assert float(distdw) == 0.0
    assert GuidedCrossPseudoSupervision.defaults["class_weights"] == "none"
    plain = cross_pseudo_loss_from_labels(logits, logits, background, background, None, None)
    assert abs(float(plain) - 2 * math.log(4 / 3)) < 1e-6  # -ln(3/4) per voxel, once from each network
