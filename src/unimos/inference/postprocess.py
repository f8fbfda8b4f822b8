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

# Voxels of removed pieces handled per batch of whole pieces, to bound the memory of their neighbour pairs (26 each).
PIECE_BATCH_VOXELS = 1 << 20


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
        keep = int(np.argmax(sizes))
        fill = shell_majority(out, components, count, keep)
        moved = (components > 0) & (components != keep) & (out == cls)
        out[moved] = fill[components[moved]]
    return out


def shell_majority(labels: np.ndarray, components: np.ndarray, count: int, keep: int) -> np.ndarray:
    """Per component 1..count of `components` except `keep`: the most common value of `labels` on its one-voxel
    shell (its 26-neighbours outside it, each counted once; ties to the smaller value; 0 without a shell).

    Entries 0 and `keep` are 0. Every piece at once, as a noisy map has thousands. The shell of a piece never holds
    another piece (they would be connected), so reassigning the pieces one at a time would read the same shells."""
    fill = np.zeros(count + 1, dtype=labels.dtype)
    flat_components, flat_labels = components.ravel(), labels.ravel()
    voxels = np.flatnonzero((flat_components > 0) & (flat_components != keep))
    if voxels.size == 0:
        return fill
    voxels = voxels[np.argsort(flat_components[voxels], kind="stable")]
    pieces = flat_components[voxels].astype(np.int64)
    coords = np.unravel_index(voxels, labels.shape)
    offsets = [o for o in np.ndindex(*(3,) * labels.ndim) if any(v != 1 for v in o)]
    n_values = int(flat_labels.max()) + 1
    cuts = [0]  # batches of whole pieces, about PIECE_BATCH_VOXELS voxels each
    for start in np.flatnonzero(pieces[1:] != pieces[:-1]) + 1:
        if start - cuts[-1] >= PIECE_BATCH_VOXELS:
            cuts.append(int(start))
    cuts.append(voxels.size)
    counts = np.zeros((count + 1, n_values), dtype=np.int64)  # piece x label: shell voxels
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        own = pieces[lo:hi]
        pairs = []
        for offset in offsets:
            neighbour = [c[lo:hi] + (o - 1) for c, o in zip(coords, offset)]
            valid = np.ones(hi - lo, dtype=bool)
            for axis, n in enumerate(labels.shape):
                valid &= (neighbour[axis] >= 0) & (neighbour[axis] < n)
            index = np.ravel_multi_index([a[valid] for a in neighbour], labels.shape)
            outside = flat_components[index] != own[valid]
            pairs.append(own[valid][outside] * labels.size + index[outside])
        owner, where = np.divmod(np.unique(np.concatenate(pairs)), labels.size)  # each (piece, shell voxel) once
        np.add.at(counts, (owner, flat_labels[where].astype(np.int64)), 1)
        present = np.unique(own)
        fill[present] = counts[present].argmax(axis=1)
    return fill


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
