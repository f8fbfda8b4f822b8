"""Class-wise Gaussians over decoder features and their Bayes posterior: the 3D-CGMM of GuidedNet (paper 003).

Paper 003 (the poster in `papers/003_guidednet.md`) numbers no equations; we number its "Formulation" block in
reading order: eq. 1 the class mean and standard deviation, eq. 2 the Gaussian density, eq. 3 the posterior by
Bayes' rule with the training prior p^tra(k), eq. 4 the CGMM prediction G = argmax_k. The training losses follow as
eqs. 5-9 (L_gt, L_self, L_max, L_cons, L_rectify; see `guided_cps.py`). `rectified_log_posterior` is eq. 3 with the
network's softmax in place of the prior: the Gaussian-rectified posterior that `guided_cps` can take its cross
pseudo-labels from (`cross_labels="rectified"`).

Choices the paper leaves open:
- the Gaussians are diagonal (one mean and one standard deviation per feature channel), fitted per batch, no
  running (EMA) statistics: the paper fits them on the labeled batch and mentions none;
- a class absent from the fitting voxels has prior |O_k| / N = 0 (eq. 3's empirical prior), so its posterior is 0:
  it is kept out of the log-sum-exp (log prior -inf) instead of evaluating a Gaussian that has no data; its mean and
  standard deviation are finite placeholders (0 and `min_std`), so no NaN reaches a gradient;
- a variance floor `min_std**2` keeps a class with one voxel, or a dead feature channel, from a zero deviation.

All randomness (subsampling) comes from the global torch generator, which the training loop seeds and checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from unimos.losses.targets import Targets


@dataclass
class ClassGaussians:
    """One diagonal Gaussian per class, fitted on features of voxels whose class is known.

    Attributes:
        mean: (K, F) per-class mean feature (0 for an absent class).
        std: (K, F) per-class standard deviation, at least `min_std` (`min_std` for an absent class).
        prior: (K,) share of the fitting voxels in each class (0 for an absent class); sums to 1.
        present: (K,) bool, whether the class had at least one fitting voxel.
    """

    mean: torch.Tensor
    std: torch.Tensor
    prior: torch.Tensor
    present: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.mean.shape[0])


def fit_class_gaussians(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        weights: torch.Tensor | None = None, min_std: float = 1e-2) -> ClassGaussians:
    """Per-class mean, standard deviation and prior of features (paper 003, eq. 1; prior of eq. 3).

    Args:
        features: (N, F) features of voxels whose class is known (see `known_classes`).
        labels: (N,) int64 class of each voxel, in [0, num_classes).
        num_classes: K, the number of classes (background included).
        weights: optional (N,) non-negative voxel weights for the deviation. Eq. 1 weights each voxel of class k by
            the network's probability P_k of that class: sigma_k^2 = sum_x P_k (f - mu_k)^2 / sum_x P_k. The mean
            stays the plain average over O_k, as in eq. 1. None weighs all voxels equally.
        min_std: floor on the deviation, applied as sqrt(var + min_std^2) so the square root stays differentiable.

    The statistics keep the features' autograd graph (the class means of L_max, eq. 7, need it).
    """
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"need features (N, F) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}")
    features = features.float()
    one_hot = torch.nn.functional.one_hot(labels, num_classes).to(features.dtype)  # (N, K)
    counts = one_hot.sum(dim=0)  # (K,)
    present = counts > 0
    mean = (one_hot.t() @ features) / counts.clamp(min=1).unsqueeze(1)  # (K, F)
    voxel_weights = one_hot if weights is None else one_hot * weights.detach().float().unsqueeze(1)
    weight_sums = voxel_weights.sum(dim=0)  # (K,)
    # each voxel belongs to one class, so its residual to its own class mean is all eq. 1 needs: (N, F), not (N, K, F)
    residual = features - mean[labels]
    spread = voxel_weights.t() @ residual ** 2  # (K, F)
    # a class whose weights are all 0 (the network gives it no probability) falls back to the floor
    variance = spread / weight_sums.clamp(min=1e-12).unsqueeze(1)
    variance = torch.where((weight_sums > 0).unsqueeze(1), variance, torch.zeros_like(variance))
    std = torch.sqrt(variance + min_std ** 2)
    prior = counts / counts.sum().clamp(min=1)
    return ClassGaussians(mean=mean, std=std, prior=prior, present=present)


def gaussian_log_likelihood(features: torch.Tensor, gaussians: ClassGaussians) -> torch.Tensor:
    """(N, K) log N(f | mu_k, sigma_k) of each feature under each class's diagonal Gaussian (paper 003, eq. 2).

    The squared Mahalanobis term is expanded into matrix products, so memory is (N, K), not (N, K, F); features and
    means are first centred on the mean of the present class means, which keeps the expansion's cancellation small.
    """
    features = features.float()
    present = gaussians.present
    centre = (gaussians.mean[present].mean(dim=0) if bool(present.any()) else gaussians.mean.mean(dim=0)).detach()
    x = features - centre
    mean = gaussians.mean - centre
    precision = gaussians.std.pow(-2)  # (K, F)
    quadratic = (x ** 2) @ precision.t() - 2 * x @ (mean * precision).t() + (mean ** 2 * precision).sum(dim=1)
    log_norm = torch.log(gaussians.std).sum(dim=1) + 0.5 * features.shape[1] * math.log(2 * math.pi)  # (K,)
    return -0.5 * quadratic.clamp(min=0) - log_norm


def log_posterior(features: torch.Tensor, gaussians: ClassGaussians) -> torch.Tensor:
    """(N, K) log p(k | f) by Bayes' rule with the fitted prior (paper 003, eq. 3), normalised by log-sum-exp.

    Absent classes (prior 0) get log posterior -inf, i.e. posterior 0. Needs at least one present class.
    """
    if not bool(gaussians.present.any()):
        raise ValueError("no class has fitting voxels: the posterior is undefined")
    joint = gaussian_log_likelihood(features, gaussians) + torch.log(gaussians.prior.clamp(min=1e-30))
    joint = joint.masked_fill(~gaussians.present, float("-inf"))
    return torch.log_softmax(joint, dim=1)


def rectified_log_posterior(logits: torch.Tensor, features: torch.Tensor, gaussians: ClassGaussians) -> torch.Tensor:
    """(N, K) log of P_k N(f | mu_k, sigma_k) / sum_k' P_k' N(f | mu_k', sigma_k'): the network's softmax P (from
    `logits`, (N, K)) rectified by the class Gaussians' likelihood of the features (N, F).

    Bayes' rule of eq. 3 with the voxel's own network probability as its prior in place of p^tra(k) (the fitted prior
    plays no part: P already says how likely each class is here). Absent classes get -inf (no Gaussian to judge by).
    """
    if not bool(gaussians.present.any()):
        raise ValueError("no class has fitting voxels: the rectified posterior is undefined")
    joint = torch.log_softmax(logits.float(), dim=1) + gaussian_log_likelihood(features, gaussians)
    joint = joint.masked_fill(~gaussians.present, float("-inf"))
    return torch.log_softmax(joint, dim=1)


def known_classes(targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
    """(known, classes), each (B, *S): where a labeled voxel's class is certain, and that class.

    A voxel's class is known when it lies inside the annotated region and its candidate set holds a single class
    (the candidate sets of docs/architecture.md; paper 003 assumes full labels, where every voxel qualifies).
    Partially labeled voxels (several candidates) and voxels off the region would put unknown classes into the
    Gaussians.
    """
    candidates = targets.candidates()  # (B, C, *S)
    known = targets.region & (candidates.sum(dim=1) == 1)
    classes = candidates.to(torch.uint8).argmax(dim=1)
    return known, classes


def sample_positions(mask: torch.Tensor, max_voxels: int) -> torch.Tensor:
    """Flat indices of at most `max_voxels` True voxels of `mask`, drawn without replacement (all when fewer or when
    `max_voxels` <= 0), to bound the memory of the Gaussian terms. Random order from the global torch generator."""
    positions = mask.reshape(-1).nonzero().squeeze(1)
    if 0 < max_voxels < positions.numel():
        chosen = torch.randperm(positions.numel())[:max_voxels].to(positions.device)
        positions = positions[chosen]
    return positions


def gather_voxels(tensor: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(n, C) rows of a (B, C, *S) tensor at flat (batch, spatial) positions, as `sample_positions` returns them;
    indexes a view, so the full map is never copied into a (B * S, C) layout."""
    batch, channels = tensor.shape[:2]
    flat = tensor.reshape(batch, channels, -1)
    voxels = flat.shape[2]
    return flat[positions // voxels, :, positions % voxels]
