"""`progressive` as the strategy registry knows it: its options, documentation and per-step loss (supervised).

The progressive organ -> lesion method (paper 004, PWS-Seg) trains twice, which is a pipeline, not a step:
`unimos.pipelines.progressive.run_progressive` runs the stages, and `train` refuses this strategy on its own.
"""

from __future__ import annotations

from typing import Any

from unimos.strategies.base import NON_NEGATIVE, STRATEGIES
from unimos.strategies.supervised import Supervised


@STRATEGIES.register("progressive")
class Progressive(Supervised):
    """The supervised step (candidate-set loss) in each stage; `multi_round`: a pipeline runs the stages.

    Options: `drop_empty_lesion` (abandon lesion-source cases without lesion voxels, paper 004), `largest_component`
    (per-organ clean-up of the organ stage's pseudo-labels), `lesion_stage` (a third stage: the lesion stage on
    organ crops, pipelines/lesion_crops.py) and its `lesion_iterations` per lesion group (0: --iterations).
    """

    multi_round = True
    defaults: dict[str, Any] = {"drop_empty_lesion": True, "largest_component": True, "lesion_stage": True,
                                "lesion_iterations": 0}
    limits: dict[str, Any] = {"lesion_iterations": NON_NEGATIVE}
    summary = ("Organ stage: every lesion read as its organ (RUN/stage_1/); its pseudo-labels complete each case's "
               "organs, fused with what the case annotates; organ + lesion stage on the fused cases (RUN/stage_2/); "
               "then the lesion stage on organ crops (RUN/stage_3/, `unimos predict RUN/stage_2/checkpoint_final "
               "--lesion-model RUN/stage_3`): on the demo (3 seeds) lesion mean DSC 0.136 where two stages find "
               "almost none.")
    source = "paper 004 (PWS-Seg), sections 2.3-2.4, eq. 5 (class-wise label fusion), Algorithm 1"
    option_help = {
        "drop_empty_lesion": "leave out of the organ + lesion stage every case that annotates a lesion class but "
                             "holds none of its voxels (paper 004: 'abandon the data whose partial label did not "
                             "contain tumor class')",
        "largest_component": "keep each organ's largest connected component of the organ stage's pseudo-labels",
        "lesion_stage": "train a third stage, the lesion stage on crops around each lesion's organ (RUN/stage_3/, "
                        "as `--strategy lesion_crops` trains it, with its default margin and patch)",
        "lesion_iterations": "iterations per lesion group of the third stage (0: the same as --iterations)",
    }
