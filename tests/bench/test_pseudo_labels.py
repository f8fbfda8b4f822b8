"""bench/pseudo_labels.py: Dice of pseudo-labels against complete labels, per class."""

import numpy as np

from tests.bench.scripts import load_bench_script


def test_dice_per_class_by_hand():
    bench = load_bench_script("pseudo_labels")
    pseudo = np.array([0, 1, 1, 2, 0, 0])
    truth = np.array([0, 1, 2, 2, 2, 0])
    # class 1: overlap 1, sizes 2 + 1 -> 2/3; class 2: overlap 1, sizes 1 + 3 -> 2/4; class 3 absent in both -> 1
    assert np.allclose(bench.dice_per_class(pseudo, truth, 4), [2 / 3, 0.5, 1.0])
