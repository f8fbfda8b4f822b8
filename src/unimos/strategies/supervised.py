"""`supervised`: the loss of the labeled batch only (partial, naive, ignore... are losses, not strategies)."""

from __future__ import annotations

import torch

from unimos.losses.targets import targets_of
from unimos.strategies.base import STRATEGIES, StepOutput, Strategy


@STRATEGIES.register("supervised")
class Supervised(Strategy):
    """Forward the labeled batch, apply the configured loss to its candidate-set targets."""

    summary = "The labeled batch only, with the run's loss (--method); unlabeled cases are not used."
    source = "the candidate-set losses of --method; the baseline every semi-supervised row is compared with"

    def step(self, labeled: dict[str, torch.Tensor], unlabeled: dict[str, torch.Tensor] | None,
             step: int, total_steps: int) -> StepOutput:
        logits = self.main(labeled["image"])
        loss = self.loss(logits, targets_of(labeled))
        return StepOutput(loss, {"loss_labeled": float(loss.detach())})
