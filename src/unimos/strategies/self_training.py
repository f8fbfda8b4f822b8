"""`self_training` as the strategy registry knows it: its options, documentation and per-step loss (supervised).

Self-training runs the training loop several times (teacher -> pseudo-labels on disk -> students), which is a
pipeline, not a step: `unimos.pipelines.self_training.run_self_training` runs the rounds, and `train` refuses to run
this strategy on its own (it would be plain supervised training under another name).
"""

from __future__ import annotations

from typing import Any

from unimos.strategies.base import NON_NEGATIVE, PROBABILITY, STRATEGIES, Limit
from unimos.strategies.supervised import Supervised


@STRATEGIES.register("self_training")
class SelfTraining(Supervised):
    """The supervised step on labeled + pseudo-labeled cases; `multi_round`: a pipeline runs the rounds.

    Options: `rounds` (students after the teacher), `min_confidence` (drop cases below; see `mean_confidence`),
    `largest_component` (per-organ clean-up), `fuse_partial` (pseudo-label partially labeled cases too, paper 004),
    `coarse` and `coarse_margin_mm` (cascade pseudo-labels, paper 001).
    """

    multi_round = True
    defaults: dict[str, Any] = {"rounds": 1, "min_confidence": 0.0, "largest_component": True, "fuse_partial": True,
                                "coarse": "", "coarse_margin_mm": 20.0}
    limits = {"rounds": Limit(1), "min_confidence": PROBABILITY, "coarse_margin_mm": NON_NEGATIVE}
    summary = ("A teacher trained on the labeled cases pseudo-labels the others; a student is trained from scratch "
               "on labeled + pseudo-labeled cases, for `rounds` rounds (RUN/round_K/).")
    source = "paper 001, section 2.3 (teacher-student); paper 004, sections 2.3-2.4 and eq. 5 (label fusion)"
    option_help = {
        "rounds": "students trained after the teacher, each from the previous one's pseudo-labels",
        "min_confidence": "drop a pseudo-labeled case whose mean foreground confidence is below this (0: keep all)",
        "largest_component": "keep each organ's largest connected component of a pseudo-label (paper 001)",
        "fuse_partial": "pseudo-label partially labeled cases too, keeping their annotation (paper 004, eq. 5)",
        "coarse": "a coarse model's checkpoint (a `coarse` plan run): pseudo-labels come from the cascade, the "
                  "teacher predicting only inside the organ box the coarse model finds (paper 001); empty: none",
        "coarse_margin_mm": "margin added around the coarse model's organ box (mm), as `predict --coarse`",
    }
