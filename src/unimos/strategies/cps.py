"""`cps`: cross pseudo supervision (Chen et al., CVPR 2021; the base of paper 003's KT-CPS).

Two networks of the same architecture, initialised differently, each learn from the labeled batch and from the
other's argmax pseudo-label on the unlabeled batch: L = L_sup(a) + L_sup(b) + w(t) (CE(a, argmax b) + CE(b, argmax a)).
"""

from __future__ import annotations

from typing import Any

import torch

from unimos.networks.base import full_resolution
from unimos.strategies.base import STRATEGIES, StepOutput, Strategy
from unimos.strategies.pseudo import masked_cross_entropy, pseudo_labels, sigmoid_rampup
from unimos.training.batches import targets_of


def cross_pseudo_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """CE(a, argmax b) + CE(b, argmax a) over every voxel; pseudo-labels carry no gradient."""
    _, label_a = pseudo_labels(logits_a)
    _, label_b = pseudo_labels(logits_b)
    everywhere = torch.ones_like(label_a, dtype=torch.bool)
    return masked_cross_entropy(logits_a, label_b, everywhere) + masked_cross_entropy(logits_b, label_a, everywhere)


@STRATEGIES.register("cps")
class CrossPseudoSupervision(Strategy):
    """Options: `weight` of the cross term and `rampup`, the share of training over which it grows from ~0 (sigmoid
    ramp). Defaults 0.1 over the whole run, the medical setting of GuidedNet's released script (paper 003: weight
    0.1, ramped over more than its 20000 iterations); with 1.0 (CPS: 1.5 on Cityscapes, long schedules) from 20% of
    a 300-iteration demo run on, the pancreas fell to 0.29 against 0.65 supervised."""

    needs_unlabeled = True
    extra_networks = ("second",)
    defaults: dict[str, Any] = {"weight": 0.1, "rampup": 1.0}

    def supervised_and_unlabeled_logits(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None):
        """Each network's loss on the labeled batch and its full-resolution logits on the unlabeled one."""
        targets = targets_of(labeled)
        sup, unl_logits = {}, {}
        for name in ("main", "second"):
            net = self.nets[name]
            sup[name] = self.loss(net(labeled["image"]), targets)
            if unlabeled is not None:
                unl_logits[name] = full_resolution(net(unlabeled["image"]))
        return sup, unl_logits

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        sup, unl = self.supervised_and_unlabeled_logits(labeled, unlabeled)
        loss = sup["main"] + sup["second"]
        logs = {"loss_labeled": float((sup["main"] + sup["second"]).detach()) / 2}
        if unl:
            weight = self.options["weight"] * sigmoid_rampup(step, int(self.options["rampup"] * total_steps))
            cps = cross_pseudo_loss(unl["main"], unl["second"])
            loss = loss + weight * cps
            logs["loss_cps"] = float(cps.detach())
        return StepOutput(loss, logs)
