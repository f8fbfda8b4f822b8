"""Unlabeled batches come from their own random streams, so every strategy sees the labeled batches that
supervised training sees with the same seed."""

import numpy as np

from unimos.training.config import TrainConfig
from unimos.training.loop import train


def test_drawing_unlabeled_batches_leaves_the_labeled_batches_unchanged(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    common = dict(iterations=3, checkpoint_every=0, seed=5, device="cpu")
    supervised = train(cases, plan, TrainConfig(**common), tmp_path / "supervised")
    # mean teacher with a zero consistency weight: the student's loss is the supervised loss of its labeled batch,
    # so equal losses step by step mean equal labeled batches although unlabeled batches were drawn in between
    teacher = train(cases, plan, TrainConfig(strategy="mean_teacher", strategy_options={"weight": 0.0}, **common),
                    tmp_path / "mean_teacher")
    assert np.allclose(teacher.losses, supervised.losses, rtol=1e-6, atol=1e-7)
