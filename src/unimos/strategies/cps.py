"""`cps`: cross pseudo supervision (Chen et al., CVPR 2021; the base of paper 003's KT-CPS).

Two networks of the same architecture, initialised differently, each learn from the labeled batch and from the
other's argmax pseudo-label on the unlabeled batch: L = L_sup(a) + L_sup(b) + w(t) (CE(a, argmax b) + CE(b, argmax a)).
With `class_weights="distdw"` each CE weighs the pseudo-label's classes by how well its source network has learned
them (class_weights.py, the KT-CPS weights of paper 003's released code).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unimos.errors import UnimosError
from unimos.losses.targets import Targets, targets_of
from unimos.networks.base import full_resolution
from unimos.strategies.base import NON_NEGATIVE, PROBABILITY, STRATEGIES, Limit, StepOutput, Strategy
from unimos.strategies.class_weights import LearnedClassWeights, weighted_cross_entropy
from unimos.strategies.pseudo import masked_cross_entropy, pseudo_labels, sigmoid_rampup

NETWORKS = ("main", "second")
CLASS_WEIGHTS = ("none", "distdw")


def cross_pseudo_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, weights_a: torch.Tensor | None = None,
                      weights_b: torch.Tensor | None = None) -> torch.Tensor:
    """CE(a, argmax b) + CE(b, argmax a) over every voxel; pseudo-labels carry no gradient.

    With class weights, the CE against b's pseudo-label is weighted by b's weights (and the other by a's), as a
    weighted mean; without, it is the plain mean over voxels."""
    _, label_a = pseudo_labels(logits_a)
    _, label_b = pseudo_labels(logits_b)
    if weights_a is not None and weights_b is not None:
        return (weighted_cross_entropy(logits_a, label_b, weights_b)
                + weighted_cross_entropy(logits_b, label_a, weights_a))
    everywhere = torch.ones_like(label_a, dtype=torch.bool)
    return masked_cross_entropy(logits_a, label_b, everywhere) + masked_cross_entropy(logits_b, label_a, everywhere)


class LearnedWeightsMixin:
    """Per-network DistDW class weights for the cross term, kept across steps and in checkpoints (mixed in before
    Strategy, whose options must hold `class_weights` and `weights_momentum`)."""

    options: dict[str, Any]

    def __init__(self, nets: dict[str, nn.Module], loss: nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__(nets, loss, options)  # type: ignore[call-arg]
        mode = self.options["class_weights"]
        if mode not in CLASS_WEIGHTS:
            raise UnimosError("--strategy-option", f"class_weights={mode!r} is not known",
                              f"use one of: {', '.join(CLASS_WEIGHTS)}")
        self.learned = {name: LearnedClassWeights(float(self.options["weights_momentum"])) for name in NETWORKS} \
            if mode == "distdw" else None

    def update_class_weights(self, labeled_logits: dict[str, torch.Tensor],
                             targets: Targets) -> dict[str, torch.Tensor | None]:
        """Each network's weights after folding in its full-resolution labeled logits (None without weighting)."""
        if self.learned is None:
            return {name: None for name in NETWORKS}
        return {name: self.learned[name].update(labeled_logits[name], targets) for name in NETWORKS}

    def extra_state(self) -> dict[str, torch.Tensor]:
        if self.learned is None:
            return {}
        states = {f"class_weights.{name}": weights.state() for name, weights in self.learned.items()}
        return {k: v for k, v in states.items() if v is not None}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.learned is None:
            return
        for name, weights in self.learned.items():
            if f"class_weights.{name}" in tensors:
                weights.load(tensors[f"class_weights.{name}"])


@STRATEGIES.register("cps")
class CrossPseudoSupervision(LearnedWeightsMixin, Strategy):
    """Options: `weight` of the cross term and `rampup`, the share of training over which it grows from ~0 (sigmoid
    ramp). Defaults 0.1 over the whole run, the medical setting of GuidedNet's released script (paper 003: weight
    0.1, ramped over more than its 20000 iterations); with 1.0 (CPS: 1.5 on Cityscapes, long schedules) from 20% of
    a 300-iteration demo run on, the pancreas fell to 0.29 against 0.65 supervised. `class_weights` "none" (plain
    CPS) or "distdw" (class_weights.py), with `weights_momentum` (0.99) for its moving average."""

    needs_unlabeled = True
    extra_networks = ("second",)
    defaults: dict[str, Any] = {"weight": 0.1, "rampup": 1.0, "class_weights": "none", "weights_momentum": 0.99}
    limits = {"weight": NON_NEGATIVE, "rampup": PROBABILITY, "class_weights": Limit(choices=CLASS_WEIGHTS),
              "weights_momentum": PROBABILITY}
    summary = "Two networks, each trained on the labeled batch and on the other's argmax of the unlabeled batch."
    source = ("Chen et al., CVPR 2021 (cross pseudo supervision), the base of paper 003's KT-CPS; weights of "
              "kimjisoo12/GuidedNet's released medical script")
    option_help = {
        "weight": "weight of the cross term (0.1, GuidedNet's released `consistency`)",
        "rampup": "share of the run over which the cross weight grows from ~0 (sigmoid ramp; 1.0: the whole run)",
        "class_weights": "none: plain CPS; distdw: each pseudo-label class weighted by how well its network has "
                         "learned it (paper 003's released KT-CPS weights)",
        "weights_momentum": "moving-average momentum of the distdw class weights (released: 0.99)",
    }

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        targets = targets_of(labeled)
        sup, labeled_logits, unl = {}, {}, {}
        for name in NETWORKS:
            net = self.nets[name]
            logits = net(labeled["image"])
            sup[name] = self.loss(logits, targets)
            labeled_logits[name] = full_resolution(logits)
            if unlabeled is not None:
                unl[name] = full_resolution(net(unlabeled["image"]))
        loss = sup["main"] + sup["second"]
        logs = {"loss_labeled": float((sup["main"] + sup["second"]).detach()) / 2}
        if unl:
            weights = self.update_class_weights(labeled_logits, targets)
            weight = self.options["weight"] * sigmoid_rampup(step, int(self.options["rampup"] * total_steps))
            cps = cross_pseudo_loss(unl["main"], unl["second"], weights["main"], weights["second"])
            loss = loss + weight * cps
            logs["loss_cps"] = float(cps.detach())
            logs["loss_unlabeled"] = float(weight * cps.detach())  # what the cross term adds to the loss
        return StepOutput(loss, logs)
