"""The class-wise Gaussians of GuidedNet's 3D-CGMM (paper 003, eqs. 1-4): fitting, posterior, known-class voxels."""

from __future__ import annotations

import math

import pytest
import torch

from unimos.losses.targets import Targets
from unimos.strategies.gaussian_mixture import (
    ClassGaussians,
    fit_class_gaussians,
    gather_voxels,
    known_classes,
    log_posterior,
    rectified_log_posterior,
    sample_positions,
)


def gaussians(mean, std, prior, present=None) -> ClassGaussians:
    mean, std, prior = (torch.tensor(v, dtype=torch.float32) for v in (mean, std, prior))
    present = torch.ones(len(prior), dtype=torch.bool) if present is None else torch.tensor(present)
    return ClassGaussians(mean=mean, std=std, prior=prior, present=present)


def test_midway_point_of_equal_gaussians_has_the_prior_as_posterior():
    # N(1 | 0, 1) = N(1 | 2, 1), so Bayes' rule leaves the priors 1/4, 3/4
    model = gaussians([[0.0], [2.0]], [[1.0], [1.0]], [0.25, 0.75])
    posterior = log_posterior(torch.tensor([[1.0]]), model).exp()
    assert torch.allclose(posterior, torch.tensor([[0.25, 0.75]]), atol=1e-6)


def test_wider_gaussian_is_penalised_by_its_normalisation():
    # at x = 1: N(1|0,1) = e^-0.5 / sqrt(2 pi); N(1|3,2) = e^-0.5 / (2 sqrt(2 pi)); equal priors -> 2/3, 1/3
    model = gaussians([[0.0], [3.0]], [[1.0], [2.0]], [0.5, 0.5])
    posterior = log_posterior(torch.tensor([[1.0]]), model).exp()
    assert torch.allclose(posterior, torch.tensor([[2 / 3, 1 / 3]]), atol=1e-6)


def test_two_dimensional_posterior_sums_the_channels_log_likelihoods():
    model = gaussians([[0.0, 0.0], [2.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]], [0.5, 0.5])
    features = torch.tensor([[1.0, 5.0],   # midway on channel 0, channel 1 alike for both: 1/2, 1/2
                             [2.0, 0.0]])  # log N1 - log N0 = 0 - (-0.5 * 2^2) = 2: p1 = sigmoid(2)
    posterior = log_posterior(features, model).exp()
    p1 = 1 / (1 + math.exp(-2.0))
    assert torch.allclose(posterior, torch.tensor([[0.5, 0.5], [1 - p1, p1]]), atol=1e-6)


def test_far_point_gives_a_finite_one_hot_posterior():
    # log-likelihoods near -5e5 would underflow exp(); the log-sum-exp keeps p1 = 1 / (1 + e^-1998) = 1
    model = gaussians([[0.0], [2.0]], [[1.0], [1.0]], [0.5, 0.5])
    posterior = log_posterior(torch.tensor([[1000.0]]), model).exp()
    assert torch.isfinite(posterior).all()
    assert torch.allclose(posterior, torch.tensor([[0.0, 1.0]]))


def test_rectified_posterior_is_the_networks_softmax_times_the_likelihood_and_ignores_the_prior():
    # N(x | 0, 1) and N(x | 2, 1): N1 / N0 = exp(2x - 2) = 1/3, 1, 3 at x = 1 - ln3/2, 1, 1 + ln3/2
    model = gaussians([[0.0], [2.0]], [[1.0], [1.0]], [0.25, 0.75])  # the fitted prior must play no part
    half_ln3 = math.log(3) / 2
    features = torch.tensor([[1 - half_ln3], [1.0], [1 + half_ln3]])
    logits = torch.tensor([[0.0, math.log(1.5)],  # P = (2/5, 3/5): (2/5 * 1, 3/5 * 1/3) = (2/5, 1/5) -> (2/3, 1/3)
                           [math.log(3), 0.0],    # P = (3/4, 1/4): times (1, 1) -> (3/4, 1/4)
                           [0.0, math.log(3)]])   # P = (1/4, 3/4): (1/4, 9/4) -> (1/10, 9/10)
    posterior = rectified_log_posterior(logits, features, model).exp()
    expected = torch.tensor([[2 / 3, 1 / 3], [3 / 4, 1 / 4], [1 / 10, 9 / 10]])
    assert torch.allclose(posterior, expected, atol=1e-6)


def test_rectified_posterior_gives_an_absent_class_zero():
    model = gaussians([[0.0], [0.0], [2.0]], [[1.0], [0.01], [1.0]], [0.5, 0.0, 0.5], present=[True, False, True])
    # the network's 1/3 each; at x = 1 the two Gaussians are alike, so the present classes share the voxel
    posterior = rectified_log_posterior(torch.zeros(1, 3), torch.tensor([[1.0]]), model).exp()
    assert torch.allclose(posterior, torch.tensor([[0.5, 0.0, 0.5]]), atol=1e-6)


def test_absent_class_gets_zero_posterior_and_no_nan_gradient():
    features = torch.tensor([[0.0], [0.2], [3.0], [3.4]], requires_grad=True)
    labels = torch.tensor([0, 0, 2, 2])  # class 1 absent
    model = fit_class_gaussians(features, labels, num_classes=3)
    assert model.present.tolist() == [True, False, True]
    log_post = log_posterior(torch.tensor([[1.0], [2.5]]), model)
    posterior = log_post.exp()
    assert torch.isfinite(log_post[:, [0, 2]]).all() and (posterior[:, 1] == 0).all()
    assert torch.allclose(posterior.sum(dim=1), torch.ones(2))
    log_posterior(features, model).gather(1, torch.tensor([[0], [0], [2], [2]])).sum().backward()
    assert torch.isfinite(features.grad).all()


def test_fit_by_hand_mean_std_floor_and_prior():
    features = torch.tensor([[0.0], [2.0], [10.0]])
    model = fit_class_gaussians(features, torch.tensor([0, 0, 1]), num_classes=2, min_std=0.01)
    assert torch.allclose(model.mean, torch.tensor([[1.0], [10.0]]))
    # class 0: population variance 1; class 1 has one voxel, so only the floor remains
    assert torch.allclose(model.std, torch.tensor([[math.sqrt(1 + 1e-4)], [0.01]]))
    assert torch.allclose(model.prior, torch.tensor([2 / 3, 1 / 3]))


def test_deviation_weighs_voxels_by_the_networks_probability_but_the_mean_does_not():
    # paper 003, eq. 1: mu = plain mean = 2; sigma^2 = (1 * (0-2)^2 + 1 * 0^2 + 0 * 2^2) / (1 + 1 + 0) = 2
    features = torch.tensor([[0.0], [2.0], [4.0]])
    model = fit_class_gaussians(features, torch.tensor([0, 0, 0]), num_classes=1,
                                weights=torch.tensor([1.0, 1.0, 0.0]), min_std=0.0)
    assert torch.allclose(model.mean, torch.tensor([[2.0]]))
    assert torch.allclose(model.std, torch.tensor([[math.sqrt(2.0)]]))


def test_fitting_recovers_the_means_and_deviations_of_a_generated_set():
    generator = torch.Generator().manual_seed(0)
    true_mean = torch.tensor([[1.0, -2.0], [-3.0, 4.0]])
    true_std = torch.tensor([[0.5, 2.0], [1.0, 0.1]])
    counts = (6000, 2000)
    features = torch.cat([true_mean[k] + true_std[k] * torch.randn(n, 2, generator=generator)
                          for k, n in enumerate(counts)])
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    model = fit_class_gaussians(features, labels, num_classes=2, min_std=0.0)
    assert torch.allclose(model.mean, true_mean, atol=0.1)
    assert torch.allclose(model.std, true_std, rtol=0.05)
    assert torch.allclose(model.prior, torch.tensor([0.75, 0.25]))


def test_only_voxels_of_known_class_are_used_for_fitting():
    # 3 classes; label 0 of this sample means "0 or 2" (class 2 not annotated), label 1 means 1; voxel 3 is off region
    labels = torch.tensor([[0, 1, 1, 1, 2]])
    region = torch.tensor([[True, True, True, False, True]])
    tables = torch.tensor([[[True, False, True], [False, True, False], [False, False, True]]])
    known, classes = known_classes(Targets(labels, region, tables))
    assert known.tolist() == [[False, True, True, False, True]]
    assert classes[known].tolist() == [1, 1, 2]
    features = torch.tensor([[[100.0, 5.0, 7.0, -50.0, 1.0]]])  # (B, F, S)
    positions = sample_positions(known, max_voxels=0)
    model = fit_class_gaussians(gather_voxels(features, positions), classes.reshape(-1)[positions], num_classes=3)
    assert model.present.tolist() == [False, True, True]
    assert torch.allclose(model.mean[1:], torch.tensor([[6.0], [1.0]]))  # the 100 and -50 voxels play no part


def test_sampling_bounds_the_voxels_and_draws_from_the_global_generator():
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[:, 2:6] = True  # 64 voxels
    torch.manual_seed(5)
    first = sample_positions(mask, max_voxels=10)
    torch.manual_seed(5)
    again = sample_positions(mask, max_voxels=10)
    assert first.numel() == 10 and len(set(first.tolist())) == 10
    assert mask.reshape(-1)[first].all() and torch.equal(first, again)
    assert sample_positions(mask, max_voxels=0).numel() == 64


@pytest.mark.parametrize("spatial", [(3, 4), (2, 3, 4)])
def test_gathered_voxels_are_the_rows_of_the_channels_last_layout(spatial):
    tensor = torch.randn(2, 5, *spatial)
    positions = torch.tensor([0, 7, 2 * int(torch.tensor(spatial).prod()) - 1])
    rows = tensor.movedim(1, -1).reshape(-1, 5)[positions]
    assert torch.equal(gather_voxels(tensor, positions), rows)
