"""`guided_cps`: GuidedNet (paper 003), cross pseudo supervision whose unlabeled flow is guided by labeled features.

Each network fits class-wise Gaussians to its last decoder features on the labeled voxels of known class (3D-CGMM,
`gaussian_mixture.py`, eqs. 1-4); their posterior on unlabeled voxels rectifies that network's predictions (L_rectify)
and, with `cross_labels="rectified"`, the pseudo-labels it gives the other network. With the equation numbers of
`gaussian_mixture.py` (paper 003 numbers none; we count its formulas in reading order):

    L = sum over nets [ L_sup + w_gt L_gt + w_self L_self + w_max L_max ]
        + r(t) [ w_cps L_cps + w_cons L_cons + w_rectify L_rectify ]

- L_gt (eq. 5): cross-entropy of the Gaussian-mixture posterior G against the known class, on labeled voxels;
- L_self (eq. 6): binary cross-entropy of the network's softmax P against G (detached: G teaches), summed over
  classes, averaged over labeled voxels;
- L_max (eq. 7): exp(-||mu_k - mu_v||^2) averaged over pairs of classes present in the batch, pushes means apart;
- L_cons (eq. 8): squared difference of the two networks' posteriors on unlabeled voxels;
- L_rectify (eq. 9): cross-entropy of each network against argmax of its own posterior (eq. 4) on unlabeled voxels;
- L_cps: CE of each network against the other's pseudo-labels, plain by default, with the released code's class
  weights under `class_weights="distdw"` (class_weights.py); the pseudo-labels are the network's argmax
  (`cross_labels="network"`, as released) or the argmax of its Gaussian-rectified posterior (`"rectified"`,
  `gaussian_mixture.rectified_log_posterior`). With the five Gaussian weights at 0 and network labels this is `cps`
  with the same `class_weights`.
The knowledge transfer of KT-CPS is that the Gaussians fitted on labeled features are what supervise the unlabeled
flow (L_cons, L_rectify), and that how well each class is learned on labeled voxels weighs the cross pseudo-labels;
r(t) is the sigmoid ramp of `cps`.

Where paper and released code (kimjisoo12/GuidedNet at 3def342, `train_guidedNet_flare.py`, `utils/tools.py`)
differ: sums and normalisations follow the paper's equations (issue 23); what the paper leaves open (which classes
count, how the Gaussian terms are weighted) follows the released code; each term's docstring says which. One
default departs from the release, measured: the cross term is unweighted (`class_weights`, see the class docstring).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unimos.losses.targets import targets_of
from unimos.networks.base import Logits, full_resolution
from unimos.strategies.base import NON_NEGATIVE, PROBABILITY, STRATEGIES, Limit, StepOutput, Strategy
from unimos.strategies.class_weights import weighted_cross_entropy
from unimos.strategies.cps import CLASS_WEIGHTS, NETWORKS, LearnedWeightsMixin
from unimos.strategies.gaussian_mixture import (
    ClassGaussians,
    fit_class_gaussians,
    gather_voxels,
    known_classes,
    log_posterior,
    rectified_log_posterior,
    sample_positions,
)
from unimos.strategies.pseudo import masked_cross_entropy, pseudo_labels, sigmoid_rampup

CROSS_LABELS = ("network", "rectified")


def logits_and_features(net: nn.Module, image: torch.Tensor) -> tuple[Logits, torch.Tensor]:
    """Logits and last decoder features, through `forward` so that a DDP wrapper synchronises the gradients."""
    return net(image, with_features=True)


def posterior_ground_truth_loss(log_post: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """L_gt (paper 003, eq. 5): -mean log G_y, the Gaussian-mixture posterior's cross-entropy against known classes.

    As the paper; the released code (tools.cal_gmm_loss, loss2) takes a halved binary cross-entropy of the one-hot
    label against exp(-d^2), averaged over the classes present."""
    return F.nll_loss(log_post, classes)


def self_guidance_loss(logits: torch.Tensor, posterior: torch.Tensor) -> torch.Tensor:
    """L_self (paper 003, eq. 6): -1/|B_l| sum_i [G_i log P_i + (1 - G_i) log(1 - P_i)], summed over classes.

    `logits` (n, K) give the network's P; `posterior` (n, K) is G, used as a fixed target (detached here).
    """
    log_p = torch.log_softmax(logits.float(), dim=1)
    log_not_p = torch.log1p(-log_p.exp().clamp(max=1.0 - 1e-6))  # P can round to 1 in float32
    target = posterior.detach()
    # paper 003, eq. 6: G_i and P_i are K-vectors (as y_i log G_i in eq. 5), so each voxel's term sums over classes;
    # the mean is over voxels only (before issue 23 this averaged over classes too, 1/K of eq. 6). The released code
    # (utils/tools.py cal_gmm_loss, loss1, lines 210-213) halves the term and averages it over the classes present,
    # with exp(-d^2) in place of the posterior G.
    return -(target * log_p + (1 - target) * log_not_p).sum(dim=1).mean()


def mean_separation_loss(gaussians: ClassGaussians) -> torch.Tensor:
    """L_max (paper 003, eq. 7): 2 / (K (K - 1)) sum over pairs k < v of exp(-||mu_k - mu_v||^2), K the classes
    present; 0 with fewer than two present classes."""
    means = gaussians.mean[gaussians.present]
    count = means.shape[0]
    if count < 2:
        return gaussians.mean.new_zeros(())
    # paper 003, eq. 7: (mu_k - mu_v)^2 of F-channel means is the squared distance, summed over channels (before
    # issue 23 averaged over channels: exp(-d^2 / F)); the released code (utils/tools.py proto_loss, lines 123-135)
    # squares the channel mean of |mu_k - mu_v| instead. K counts the classes present, as the released code's `num`
    # of pairs (an absent class has no mean); 2 / (K (K - 1)) is one over the number of pairs k < v, the pairs the
    # released loop visits.
    squared = ((means.unsqueeze(0) - means.unsqueeze(1)) ** 2).sum(dim=-1)  # (k, k)
    rows, cols = torch.triu_indices(count, count, offset=1, device=means.device)
    return torch.exp(-squared[rows, cols]).mean()


def posterior_consistency_loss(posterior_a: torch.Tensor, posterior_b: torch.Tensor) -> torch.Tensor:
    """L_cons (paper 003, eq. 8): mean squared difference of the two networks' posteriors on unlabeled voxels.

    Averaged over classes as well as voxels, as the released code's `torch.mean((res1_soft - res2_soft)**2)` (eq. 8's
    square of K-vectors would sum over classes: K times this); the released code takes it on labeled voxels.
    """
    return ((posterior_a - posterior_b) ** 2).mean()


def rectify_loss(logits: torch.Tensor, log_post: torch.Tensor) -> torch.Tensor:
    """L_rectify (paper 003, eq. 9, one network's half): cross-entropy of the logits (n, K) against the Gaussian
    mixture's prediction argmax_k p(k | f) (eq. 4), the rectified pseudo-label. As the paper; the released code
    (tools.gmm_loss) takes a soft, halved binary cross-entropy against exp(-d^2) instead."""
    return F.cross_entropy(logits.float(), log_post.detach().argmax(dim=1))


@torch.no_grad()
def rectified_pseudo_labels(logits: torch.Tensor, features: torch.Tensor, gaussians: ClassGaussians) -> torch.Tensor:
    """(B, *S) argmax of the Gaussian-rectified posterior (`rectified_log_posterior`) at every voxel of full-resolution
    `logits` (B, K, *S) and `features` (B, F, *S). A voxel the network gives to a class without a Gaussian (absent
    from the labeled voxels) keeps the network's label: rectification cannot judge a class it has no model of."""
    network = logits.argmax(dim=1)
    rectified = []
    for sample_logits, sample_features in zip(logits, features):  # one sample at a time bounds the (voxels, F) copy
        logit_rows = sample_logits.reshape(sample_logits.shape[0], -1).t()
        feature_rows = sample_features.reshape(sample_features.shape[0], -1).t()
        log_post = rectified_log_posterior(logit_rows, feature_rows, gaussians)
        rectified.append(log_post.argmax(dim=1).reshape(sample_logits.shape[1:]))
    return torch.where(gaussians.present[network], torch.stack(rectified), network)


def cross_pseudo_loss_from_labels(logits_a: torch.Tensor, logits_b: torch.Tensor, labels_a: torch.Tensor,
                                  labels_b: torch.Tensor, weights_a: torch.Tensor | None,
                                  weights_b: torch.Tensor | None) -> torch.Tensor:
    """CE(a, labels of b) + CE(b, labels of a), each weighted by its label source's class weights (a weighted mean;
    the plain mean without weights): `cps.cross_pseudo_loss` with the pseudo-labels given instead of each argmax."""
    if weights_a is not None and weights_b is not None:
        return (weighted_cross_entropy(logits_a, labels_b, weights_b)
                + weighted_cross_entropy(logits_b, labels_a, weights_a))
    everywhere = torch.ones_like(labels_a, dtype=torch.bool)
    return masked_cross_entropy(logits_a, labels_b, everywhere) + masked_cross_entropy(logits_b, labels_a, everywhere)


@STRATEGIES.register("guided_cps")
class GuidedCrossPseudoSupervision(LearnedWeightsMixin, Strategy):
    """GuidedNet (paper 003): `cps` plus the 3D-CGMM terms. Options (paper 003 gives no weights; where noted, the
    value of the authors' released training script, kimjisoo12/GuidedNet `train_guidedNet_flare.py`):

    - `cps_weight` (0.1, the script's ramped `consistency`, as `cps`) and `rampup` (1.0: the whole run; the
      script's ramp is longer than its training);
    - `cross_labels` ("network"): where the cross pseudo-labels come from. "network": each network's argmax, as the
      released script (lines 257-259: `max_A = torch.argmax(outputs1.detach(), ...)`, `loss_cps =
      unsup_loss_func_B(outputs1, max_B) + ...`); "rectified": the argmax of the network's softmax times its
      Gaussians' likelihood of the features (`rectified_pseudo_labels`), pseudo-labels rectified by the labeled
      feature distribution; the share of unlabeled voxels whose label that changes is logged as `share_relabeled`;
    - `gt_weight`, `self_weight`, `max_weight` (0.1 each; the script's `lanmuda` is 1 by default, 0.3 in its
      README's commands, over 20000 iterations), ramped over `gaussian_rampup` of the run (0.0: unramped, as the
      script). At 1 these terms on labeled voxels, whose early Gaussians are poor, fought the supervised loss in
      300-iteration demo runs: on a development seed (2, not one of the reported seeds) the right kidney and pancreas
      fell to 0 (mean DSC 0.583 against 0.766 supervised), at 0.1 the mean was 0.782, with a ramp instead 0.777
      (bench/README.md; measured while L_self averaged over classes and L_max over channels, see their functions);
    - `cons_weight` (0.1, the script's `consistency`), ramped;
    - `rectify_weight` (0.1), ramped: the script's unlabeled Gaussian term is a soft binary cross-entropy, halved
      and averaged over classes, far weaker per voxel than eq. 9's hard cross-entropy; at weight 1 (and
      `cps_weight` 1, ramp 0.2) a 300-iteration demo run lost the spleen and pancreas entirely;
    - `class_weights` ("none": plain cross-entropy; "distdw": the script's KT-CPS weights of the cross term,
      class_weights.py) and `weights_momentum` (0.99, the script's). Not the released default: DistDW gives
      background, the class predicted right most often, weight 0, so the cross term never teaches background and
      each network's false foreground on unlabeled slices teaches the other network the same. On a development split
      of ACDC (10 training patients outside the labeled sets, `bench/acdc.py --development 10 --budget 0.5`; the
      reported validation patients untouched) "distdw" scored 0.454 mean Dice against 0.491 supervised, with 4.7
      times supervised's background voxels called myocardium (`bench/confusion.py`), and "none" 0.562; on the
      demo's development seed `cps` lost 0.009 with it (bench/README.md);
    - `max_voxels` (32768): voxels drawn per batch for the Gaussian terms, bounding their memory (0: all);
    - `min_std` (0.01): floor on each Gaussian's standard deviation.
    """

    needs_unlabeled = True
    extra_networks = ("second",)
    defaults: dict[str, Any] = {
        "cps_weight": 0.1,
        "gt_weight": 0.1,  # paper 003, eq. 5
        "self_weight": 0.1,  # paper 003, eq. 6
        "max_weight": 0.1,  # paper 003, eq. 7
        "cons_weight": 0.1,  # paper 003, eq. 8
        "rectify_weight": 0.1,  # paper 003, eq. 9
        "rampup": 1.0,
        "gaussian_rampup": 0.0,
        "class_weights": "none",  # the release's "distdw" gives background weight 0 (see the docstring)
        "cross_labels": "network",  # the released script's argmax of each network's own output
        "weights_momentum": 0.99,
        "max_voxels": 32768,
        "min_std": 0.01,
    }
    limits = {**{key: NON_NEGATIVE for key in ("cps_weight", "gt_weight", "self_weight", "max_weight", "cons_weight",
                                               "rectify_weight", "min_std")},
              "rampup": PROBABILITY, "gaussian_rampup": PROBABILITY, "class_weights": Limit(choices=CLASS_WEIGHTS),
              "cross_labels": Limit(choices=CROSS_LABELS), "weights_momentum": PROBABILITY, "max_voxels": Limit(1)}
    summary = ("cps whose unlabeled flow is guided by a Gaussian mixture of the labeled voxels' decoder features "
               "(3D-CGMM): feature losses on labeled voxels, consistency and rectified labels on unlabeled ones.")
    source = ("paper 003 (GuidedNet), eqs. 5-9; released code kimjisoo12/GuidedNet, train_guidedNet_flare.py and "
              "utils/tools.py")
    option_help = {
        "cps_weight": "weight of the cross pseudo-label term (released `consistency`: 0.1)",
        "gt_weight": "weight of L_gt, eq. 5 (the paper gives none; the release's `lanmuda` is 1, see the docstring)",
        "self_weight": "weight of L_self, eq. 6",
        "max_weight": "weight of L_max, eq. 7 (class means pushed apart)",
        "cons_weight": "weight of L_cons, eq. 8 (the two networks' posteriors agree; released `consistency`)",
        "rectify_weight": "weight of L_rectify, eq. 9 (cross-entropy against the Gaussian mixture's label)",
        "rampup": "share of the run over which the unlabeled weights grow from ~0 (sigmoid ramp)",
        "gaussian_rampup": "share of the run over which the labeled Gaussian terms grow (0: unramped, as released)",
        "class_weights": "none: plain cross-entropy; distdw: the release's KT-CPS class weights of the cross term "
                         "(background weight 0: over-segmented ACDC in a development run)",
        "cross_labels": "network: each network's argmax, as released; rectified: argmax of softmax x Gaussian "
                        "likelihood of the features",
        "weights_momentum": "moving-average momentum of the distdw class weights (released: 0.99)",
        "max_voxels": "voxels drawn per batch for the Gaussian terms, bounding their memory",
        "min_std": "floor on each Gaussian's standard deviation",
    }

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        options = self.options
        targets = targets_of(labeled)
        known, classes = known_classes(targets)
        labeled_positions = sample_positions(known, int(options["max_voxels"]))
        labeled_classes = classes.reshape(-1)[labeled_positions]
        unlabeled_positions = None
        if unlabeled is not None:
            everywhere = torch.ones(unlabeled["image"].shape[:1] + unlabeled["image"].shape[2:], dtype=torch.bool,
                                    device=unlabeled["image"].device)
            unlabeled_positions = sample_positions(everywhere, int(options["max_voxels"]))

        labeled_ramp = sigmoid_rampup(step, int(options["gaussian_rampup"] * total_steps))
        loss = labeled["image"].new_zeros(())
        terms: dict[str, torch.Tensor] = {}
        labeled_logits: dict[str, torch.Tensor] = {}
        unlabeled_logits: dict[str, torch.Tensor] = {}
        unlabeled_log_post: dict[str, torch.Tensor] = {}
        cross_labels: dict[str, torch.Tensor] = {}
        rectify_terms: list[torch.Tensor] = []

        def add_log(name: str, value: torch.Tensor) -> None:  # logged as the mean over the two networks, as `cps`
            terms[name] = terms.get(name, value.new_zeros(())) + value.detach() / 2

        for name in NETWORKS:
            net = self.nets[name]
            logits, features = logits_and_features(net, labeled["image"])
            labeled_logits[name] = full_resolution(logits)
            supervised = self.loss(logits, targets)
            loss = loss + supervised
            add_log("loss_labeled", supervised)
            gaussians = None
            # the Gaussian terms in float32 whatever the autocast: log-likelihoods sum over channels
            with torch.autocast(features.device.type, enabled=False):
                if labeled_positions.numel() > 0:
                    voxel_features = gather_voxels(features, labeled_positions).float()
                    voxel_logits = gather_voxels(labeled_logits[name], labeled_positions).float()
                    # paper 003, eq. 1: the deviation weighs each voxel by the network's probability of its class
                    probability = torch.softmax(voxel_logits.detach(), dim=1)
                    own_class = probability.gather(1, labeled_classes.unsqueeze(1)).squeeze(1)
                    gaussians = fit_class_gaussians(voxel_features, labeled_classes, voxel_logits.shape[1],
                                                    weights=own_class, min_std=float(options["min_std"]))
                    log_post = log_posterior(voxel_features, gaussians)
                    gt = posterior_ground_truth_loss(log_post, labeled_classes)
                    self_term = self_guidance_loss(voxel_logits, log_post.exp())
                    separation = mean_separation_loss(gaussians)
                    loss = loss + labeled_ramp * (options["gt_weight"] * gt + options["self_weight"] * self_term
                                                  + options["max_weight"] * separation)
                    add_log("loss_gt", gt)
                    add_log("loss_self", self_term)
                    add_log("loss_max", separation)
            if unlabeled is None:
                continue
            u_logits, u_features = logits_and_features(net, unlabeled["image"])
            unlabeled_logits[name] = full_resolution(u_logits)
            cross_labels[name] = pseudo_labels(unlabeled_logits[name])[1]
            if gaussians is not None:
                with torch.autocast(u_features.device.type, enabled=False):
                    u_voxel_features = gather_voxels(u_features, unlabeled_positions).float()
                    unlabeled_log_post[name] = log_posterior(u_voxel_features, gaussians)
                    u_voxel_logits = gather_voxels(unlabeled_logits[name], unlabeled_positions)
                    rectify_terms.append(rectify_loss(u_voxel_logits, unlabeled_log_post[name]))
                    if options["cross_labels"] == "rectified":
                        network_labels = cross_labels[name]
                        cross_labels[name] = rectified_pseudo_labels(unlabeled_logits[name], u_features, gaussians)
                        add_log("share_relabeled", (cross_labels[name] != network_labels).float().mean())

        logs = {k: float(v) for k, v in terms.items()}
        if unlabeled is None:
            return StepOutput(loss, logs)

        ramp = sigmoid_rampup(step, int(options["rampup"] * total_steps))
        weights = self.update_class_weights(labeled_logits, targets)
        cps = cross_pseudo_loss_from_labels(unlabeled_logits["main"], unlabeled_logits["second"], cross_labels["main"],
                                            cross_labels["second"], weights["main"], weights["second"])
        unlabeled_loss = options["cps_weight"] * cps
        logs["loss_cps"] = float(cps.detach())
        if unlabeled_log_post:
            rectify = rectify_terms[0] + rectify_terms[1]
            with torch.autocast(cps.device.type, enabled=False):
                consistency = posterior_consistency_loss(unlabeled_log_post["main"].exp(),
                                                         unlabeled_log_post["second"].exp())
            unlabeled_loss = unlabeled_loss + options["rectify_weight"] * rectify \
                + options["cons_weight"] * consistency
            logs["loss_rectify"] = float(rectify.detach())
            logs["loss_cons"] = float(consistency.detach())
        logs["loss_unlabeled"] = float(ramp * unlabeled_loss.detach())  # what the unlabeled terms add to the loss
        return StepOutput(loss + ramp * unlabeled_loss, logs)
