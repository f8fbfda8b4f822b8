"""Lesions in one phantom: drawn only where asked, grown inside their organs, and the organ label keeps the organ."""

from __future__ import annotations

import numpy as np

from unimos.phantoms.anatomy import ALL_CLASSES, CLASSES, LESION_ORGANS, LESIONS, rasterise
from unimos.phantoms.shapes import Grid

GRID = Grid((2.5, 2.5, 4.0), (96, 72, 40), (-120.0, -90.0, -75.0))
LESION_VALUES = [ALL_CLASSES.index(name) + 1 for name in LESIONS]


def test_a_phantom_without_lesion_shares_has_no_lesion_and_its_organ_label_is_its_label() -> None:
    phantom = rasterise(GRID, np.random.default_rng(3))
    assert not np.isin(phantom.label, LESION_VALUES).any()
    assert np.array_equal(phantom.label, phantom.organ_label)


def test_every_lesion_voxel_was_a_voxel_of_one_of_its_organs() -> None:
    found = set()
    for seed in range(3):
        phantom = rasterise(GRID, np.random.default_rng(seed), dict.fromkeys(LESIONS, 1.0))
        assert phantom.organ_label.max() <= len(CLASSES)
        for lesion, organs in LESION_ORGANS.items():
            voxels = phantom.label == ALL_CLASSES.index(lesion) + 1
            found.add(lesion) if voxels.any() else None
            under = phantom.organ_label[voxels]
            assert np.isin(under, [CLASSES.index(o) + 1 for o in organs]).all(), (seed, lesion)
        lesion_free = ~np.isin(phantom.label, LESION_VALUES)
        assert np.array_equal(phantom.label[lesion_free], phantom.organ_label[lesion_free])
    assert found == set(LESIONS)


def test_a_lesion_share_of_zero_draws_none_of_that_class() -> None:
    phantom = rasterise(GRID, np.random.default_rng(5), {"liver_tumor": 1.0, "kidney_tumor": 0.0,
                                                         "pancreas_tumor": 0.0})
    assert (phantom.label == ALL_CLASSES.index("liver_tumor") + 1).any()
    assert not np.isin(phantom.label, LESION_VALUES[1:]).any()
