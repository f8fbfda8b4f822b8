"""From a source's label file to what the losses need: project label indices, annotated region, candidate sets.

docs/architecture.md, candidate sets: for a voxel inside the annotated region, the classes it may truly belong to follow
from its label and the case's annotated classes; outside the region every class is possible. Because the set
depends only on the voxel's project label, one (C x C) table per case holds all of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cc3d
import numpy as np

from unimos.data.manifest import Case
from unimos.data.taxonomy import Taxonomy
from unimos.data.volume import Volume
from unimos.errors import InputError


def candidate_table(taxonomy: Taxonomy, annotated: Iterable[str]) -> np.ndarray:
    """(C, C) boolean table: row l = the candidate set of an annotated-region voxel whose project label is l.

    Row 0 (labeled background): background plus every class not annotated, minus children all of whose parents
    are annotated (the voxel is outside those parents, so it cannot be inside their children).
    Row c: {c} plus the children of c that were not annotated (a liver voxel may be liver_tumor).
    """
    n = taxonomy.num_classes
    annotated_idx = {taxonomy.index(name) for name in annotated}
    table = np.zeros((n, n), dtype=bool)
    table[0, 0] = True
    for c in range(1, n):
        parents = taxonomy.parents_of(c)
        inside_annotated_parents_only = bool(parents) and all(p in annotated_idx for p in parents)
        if c not in annotated_idx and not inside_annotated_parents_only:
            table[0, c] = True
        table[c, c] = True
        for child in taxonomy.children_of(c):
            if child not in annotated_idx:
                table[c, child] = True
    return table


def body_midline_x(image: Volume, modality: str) -> float:
    """World x (mm) of the body's left-right centre, from a body mask (CT: > -500 HU; MR: > 10% of p99)."""
    data = image.array
    threshold = -500.0 if modality == "CT" else 0.1 * float(np.percentile(data, 99))
    body = data > threshold
    total = int(np.count_nonzero(body))
    if total == 0:
        centre = (np.array(image.shape) - 1) / 2.0
    else:  # the body voxels' mean index per axis, from per-axis counts (no list of every voxel's index)
        centre = np.array([float(np.dot(np.count_nonzero(body, axis=tuple(a for a in range(body.ndim) if a != axis)),
                                        np.arange(body.shape[axis]))) / total for axis in range(body.ndim)])
    return float((image.affine @ np.append(centre, 1.0))[0])


def split_sided(mask: np.ndarray, affine: np.ndarray, midline_x: float) -> np.ndarray:
    """Split a merged left/right mask by connected components and body side: 1 = patient's right, 2 = left.

    In RAS+ world coordinates the patient's right has larger x than the midline.
    """
    components = cc3d.connected_components(mask.astype(np.uint8), connectivity=26)
    sides = np.zeros(mask.shape, dtype=np.uint8)
    stats = cc3d.statistics(components)
    for comp in range(1, int(components.max()) + 1):
        centroid = stats["centroids"][comp]
        x = (affine @ np.append(centroid, 1.0))[0]
        sides[components == comp] = 1 if x > midline_x else 2
    return sides


def to_project_labels(case: Case, taxonomy: Taxonomy, label: Volume,
                      image: Volume | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map a case's label file onto project indices; return (labels uint8, annotated region bool).

    Values mapped to 'ignore' and, for sparse cases, voxels off the annotated slices lie outside the region
    (their label is set to 0, and it carries no information there).
    """
    data = label.array
    labels = np.zeros(data.shape, dtype=np.uint8)
    region = np.ones(data.shape, dtype=bool)
    present = np.unique(data)
    undeclared = sorted(int(v) for v in present if int(v) not in case.source.label_map)
    if undeclared:
        raise InputError(case.label_path or "label", f"holds label values {undeclared} that source "
                         f"'{case.source.name}' does not declare",
                         "add them to the source's labels (as a class, 'background' or 'ignore')")
    midline = None
    for value in present:
        meaning = case.source.label_map[int(value)]
        where = data == value
        if meaning.kind == "class":
            labels[where] = taxonomy.index(meaning.classes[0])
        elif meaning.kind == "ignore":
            region[where] = False
        elif meaning.kind == "sided":
            if midline is None:
                midline = body_midline_x(image, case.modality) if image is not None else \
                    float((label.affine @ np.append((np.array(label.shape) - 1) / 2.0, 1.0))[0])
            sides = split_sided(where, label.affine, midline)
            for side, name in ((1, meaning.classes[0]), (2, meaning.classes[1])):
                if name:
                    labels[sides == side] = taxonomy.index(name)
    if case.annotated_slices is not None:
        region &= slice_region(data.shape, case.annotated_slices)
    labels[~region] = 0
    return labels, region


def slice_region(shape: tuple[int, ...], annotated_slices: dict[int, tuple[int, ...]]) -> np.ndarray:
    """Boolean mask of the voxels on the listed slices (the union over the listed axes)."""
    region = np.zeros(shape, dtype=bool)
    for axis, indices in annotated_slices.items():
        index = [slice(None)] * len(shape)
        index[axis] = [i for i in indices if 0 <= i < shape[axis]]
        region[tuple(index)] = True
    return region


def foreground_box(label: np.ndarray, margin: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Bounding box of the labeled (non-zero) voxels grown by `margin` voxels per axis, clipped; None if empty."""
    low, high = [], []
    for axis in range(label.ndim):
        hits = np.flatnonzero(np.any(label != 0, axis=tuple(a for a in range(label.ndim) if a != axis)))
        if not len(hits):
            return None
        low.append(max(0, int(hits[0]) - int(margin[axis])))
        high.append(min(label.shape[axis], int(hits[-1]) + 1 + int(margin[axis])))
    return tuple(low), tuple(high)
