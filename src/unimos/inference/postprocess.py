"""Post-processing of label maps: keep each organ's largest connected component."""

from __future__ import annotations

from collections.abc import Iterable

import cc3d
import numpy as np


def largest_component_per_class(labels: np.ndarray, classes: Iterable[int] | None = None) -> np.ndarray:
    """Remove every component of each class but its largest (26-connectivity); removed voxels become 0."""
    out = labels.copy()
    for cls in classes if classes is not None else [int(c) for c in np.unique(labels) if c != 0]:
        mask = labels == cls
        if not mask.any():
            continue
        components, count = cc3d.connected_components(mask, connectivity=26, return_N=True)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        out[(components != int(np.argmax(sizes))) & mask] = 0
    return out
