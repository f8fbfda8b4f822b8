"""`lesion_crops` as the strategy registry knows it: its options, documentation and per-step loss (supervised).

The lesion stage cuts its own training cases (crops around each lesion's organ) before it trains, which is a
pipeline, not a step: `unimos.pipelines.lesion_crops.run_lesion_crops` runs it, and `train` refuses this strategy
on its own.
"""

from __future__ import annotations

from typing import Any

from unimos.strategies.base import NON_NEGATIVE, STRATEGIES, Limit
from unimos.strategies.supervised import Supervised


@STRATEGIES.register("lesion_crops")
class LesionCrops(Supervised):
    """The supervised step (candidate-set loss) on organ crops; `multi_round`: a pipeline cuts the crops first.

    Options: `margin_mm` (around each organ), `patch` (voxels per axis of the stage's training patch).
    """

    multi_round = True
    defaults: dict[str, Any] = {"margin_mm": 15.0, "patch": 32}
    limits: dict[str, Any] = {"margin_mm": NON_NEGATIVE, "patch": Limit(8, 256)}
    summary = ("The lesion stage: one small network per organ group learns its lesions from crops around the "
               "organs (the organ's mask as an extra channel); `unimos predict ORGAN_CHECKPOINT --lesion-model "
               "RUN` writes its lesions inside the organs the organ model finds. On the demo (3 seeds) its "
               "lesion mean DSC is 0.133 (from 0) and its organ mean 0.005 lower (bench/README.md, \"The demo's "
               "lesions: the lesion stage inside its organ\").")
    source = "paper 001, 2.2 (coarse-to-fine cascade); paper 004 (organs before lesions)"
    option_help = {
        "margin_mm": "margin around each organ's bounding box, in training and at prediction (mm)",
        "patch": "the stage's training patch, voxels per axis (at most the plan's patch)",
    }
