"""Post-processing of label maps: each organ keeps its largest connected piece, lesions keep every piece.

An organ's pieces are found together with the lesions inside it (a tumour that cuts a liver in two does not make
half of the liver a stray piece) and ranked by the organ's own voxels (a lesion of several organs, a kidney tumour
in the left kidney, does not make the right kidney a stray piece). A removed piece goes to the class that
surrounds it, so that a stray blob inside another organ leaves no hole there; a piece surrounded by background
becomes background.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage

from unimos.data.taxonomy import Taxonomy


def largest_component_per_class(labels: np.ndarray, taxonomy: Taxonomy | None = None) -> np.ndarray:
    """Keep each organ's largest component (26-connectivity, lesions inside joining its pieces, the piece with the
    most voxels of the organ itself kept); classes with parents in `taxonomy` (lesions) keep all their components.
    Without a taxonomy every class is an organ."""
    out = labels.copy()
    for cls in (int(c) for c in np.unique(labels) if c != 0):
        if taxonomy is not None and taxonomy.parents_of(cls):
            continue
        inside = [cls, *(taxonomy.descendants(cls) if taxonomy is not None else [])]
        components, count = cc3d.connected_components(np.isin(labels, inside), connectivity=26, return_N=True)
        if count <= 1:
            continue
        sizes = np.bincount(components[labels == cls], minlength=count + 1)
        boxes = cc3d.statistics(components)["bounding_boxes"]
        for piece in range(1, count + 1):
            if piece != int(np.argmax(sizes)):
                _reassign(out, components, piece, boxes[piece], cls)
    return out


def _reassign(out: np.ndarray, components: np.ndarray, piece: int, box: tuple[slice, ...], cls: int) -> None:
    """Give the `cls` voxels of one removed piece the most common label on the piece's one-voxel shell."""
    fill = surrounding_label(out, components, piece, box)
    grown = _grown(box, out.shape)
    view = out[grown]
    view[(components[grown] == piece) & (view == cls)] = fill


def surrounding_label(labels: np.ndarray, components: np.ndarray, piece: int, box: tuple[slice, ...],
                      foreground_only: bool = False) -> int:
    """The most common value of `labels` on the one-voxel shell (26-neighbourhood) around component `piece` of
    `components` (`box`: its bounding box); with `foreground_only` the most common non-zero value, 0 if none."""
    grown = _grown(box, labels.shape)
    mask = components[grown] == piece
    shell = ndimage.binary_dilation(mask, structure=np.ones((3,) * mask.ndim, dtype=bool)) & ~mask
    around = np.asarray(labels[grown][shell], dtype=np.int64)
    if foreground_only:
        around = around[around > 0]
    return int(np.bincount(around).argmax()) if around.size else 0


def _grown(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A bounding box grown by one voxel on every side, within the array."""
    return tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(box, shape))
