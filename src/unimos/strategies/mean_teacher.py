"""`mean_teacher` (Tarvainen & Valpola, NeurIPS 2017): an exponential-moving-average teacher of the student, and a
consistency loss between their softmax outputs on differently perturbed copies of the unlabeled batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unimos.losses.targets import targets_of
from unimos.networks.base import full_resolution
from unimos.strategies.base import NON_NEGATIVE, PROBABILITY, STRATEGIES, StepOutput, Strategy
from unimos.strategies.pseudo import sigmoid_rampup


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameters and float buffers (norm statistics)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if t.is_floating_point():
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        else:
            t.copy_(s)


@STRATEGIES.register("mean_teacher")
class MeanTeacher(Strategy):
    """Options: `ema_decay` (0.99), consistency `weight` (1.0 x MSE of softmax outputs, ramped up over `rampup` of
    training), `noise` (sd of Gaussian input noise that makes the student's and teacher's views differ)."""

    needs_unlabeled = True
    extra_networks = ("teacher",)
    defaults: dict[str, Any] = {"ema_decay": 0.99, "weight": 1.0, "rampup": 0.4, "noise": 0.1}
    limits = {"ema_decay": PROBABILITY, "weight": NON_NEGATIVE, "rampup": PROBABILITY, "noise": NON_NEGATIVE}
    summary = ("The student matches the softmax of its exponential-moving-average teacher on a differently "
               "noised copy of the unlabeled batch.")
    source = "Tarvainen & Valpola, NeurIPS 2017 (mean teacher)"
    option_help = {
        "ema_decay": "teacher <- decay x teacher + (1 - decay) x student after every step (warm start from 0)",
        "weight": "weight of the consistency term, the mean squared difference of the two softmax outputs",
        "rampup": "share of the run over which the consistency weight grows from ~0 (sigmoid ramp)",
        "noise": "standard deviation of the Gaussian noise added to each network's copy of the input",
    }

    def __init__(self, nets: dict[str, nn.Module], loss: nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__(nets, loss, options)
        teacher = self.nets["teacher"]
        teacher.load_state_dict(self.nets["main"].state_dict())
        for p in teacher.parameters():
            p.requires_grad_(False)

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        student, teacher = self.nets["main"], self.nets["teacher"]
        supervised = self.loss(student(labeled["image"]), targets_of(labeled))
        logs = {"loss_labeled": float(supervised.detach())}
        if unlabeled is None:
            return StepOutput(supervised, logs)
        image = unlabeled["image"]
        noise = float(self.options["noise"])
        student_probs = torch.softmax(full_resolution(student(image + noise * torch.randn_like(image))).float(), 1)
        teacher.train(student.training)
        with torch.no_grad():
            teacher_probs = torch.softmax(full_resolution(teacher(image + noise * torch.randn_like(image))).float(), 1)
        consistency = ((student_probs - teacher_probs) ** 2).mean()
        weight = self.options["weight"] * sigmoid_rampup(step, int(self.options["rampup"] * total_steps))
        logs["loss_consistency"] = float(consistency.detach())
        logs["loss_unlabeled"] = float(weight * consistency.detach())  # what the consistency term adds to the loss
        return StepOutput(supervised + weight * consistency, logs)

    def after_step(self, step: int, total_steps: int) -> None:
        # warm start (Tarvainen & Valpola): the effective decay grows from 0 towards ema_decay
        decay = min(float(self.options["ema_decay"]), 1.0 - 1.0 / (step + 2))
        ema_update(self.nets["teacher"], self.nets["main"], decay)
