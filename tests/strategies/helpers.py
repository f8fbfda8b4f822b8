"""Batches cut from the tiny cache, for strategy tests."""

import numpy as np

from unimos.training.batches import PatchSource


def tiny_batches(cases, plan, seed=0):
    """(labeled, unlabeled) batches of 2 patches each from the tiny cache."""
    rng = np.random.default_rng(seed)
    labeled = PatchSource([c for c in cases if c.meta["has_label"]], plan.patch_size, foreground_fraction=1.0)
    unlabeled = PatchSource([c for c in cases if not c.meta["has_label"]], plan.patch_size, "random", 0.0)
    return labeled.batch(2, rng), unlabeled.batch(2, rng)
