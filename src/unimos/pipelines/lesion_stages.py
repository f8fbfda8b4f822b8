"""The label arithmetic of the progressive organ -> lesion pipeline (paper 004, sections 2.3-2.4): the organ
stage's taxonomy and labels (every lesion read as its organ), the lesion-source cases the paper abandons, and the
candidate sets of the organ + lesion stage's fused cases. Pure functions on arrays; `pipelines/progressive.py`
runs the stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cc3d
import numpy as np

from unimos.data.labels import candidate_table
from unimos.data.taxonomy import ClassDef, Taxonomy
from unimos.inference.postprocess import surrounding_label


def organ_taxonomy(taxonomy: Taxonomy) -> Taxonomy:
    """The organ stage's classes: the project's classes without those inside another class (the lesions)."""
    return Taxonomy(tuple(ClassDef(c.name) for c in taxonomy.classes if not c.parents))


def organ_of(taxonomy: Taxonomy) -> np.ndarray:
    """Full index -> organ-stage index; a lesion with one organ -> that organ, with several -> -1 (decided per
    lesion by the organ around it, `lesions_as_organs`)."""
    organs = organ_taxonomy(taxonomy)
    table = np.zeros(taxonomy.num_classes, dtype=np.int64)
    for index in range(1, taxonomy.num_classes):
        roots = _root_organs(taxonomy, index)
        table[index] = organs.index(roots[0]) if len(roots) == 1 else -1
    return table


def _root_organs(taxonomy: Taxonomy, index: int) -> list[str]:
    """The organs (classes without parents) that contain class `index`, itself when it is one."""
    parents = taxonomy.parents_of(index)
    if not parents:
        return [taxonomy.names[index]]
    return sorted({root for p in parents for root in _root_organs(taxonomy, p)},
                  key=taxonomy.names.index)


def lesions_as_organs(label: np.ndarray, region: np.ndarray, taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """A case's label map in the organ stage's classes (paper 004, 2.3: "classify the tumor regions into organ
    categories") -> (label, region). A lesion of several possible organs (a kidney tumour, FLARE23's 'tumor') takes
    the organ that surrounds it most; one that touches none of its organs becomes unknown (outside the region)."""
    mapping = organ_of(taxonomy)
    out = mapping[np.asarray(label, dtype=np.int64)]
    region = np.asarray(region, dtype=bool).copy()
    undecided = out < 0
    if undecided.any():
        organs = organ_taxonomy(taxonomy)
        components, count = cc3d.connected_components(undecided, connectivity=26, return_N=True)
        boxes = cc3d.statistics(components)["bounding_boxes"]
        for piece in range(1, count + 1):
            mask, box = components == piece, boxes[piece]
            lesion = int(np.bincount(np.asarray(label)[mask]).argmax())
            allowed = [organs.index(o) for o in _root_organs(taxonomy, lesion)]
            around = surrounding_label(np.where(np.isin(out, allowed), out, 0), components, piece, box,
                                       foreground_only=True)
            out[mask] = around
            region[mask] &= around > 0
    return np.where(out < 0, 0, out).astype(np.uint8), region


def organ_stage_table(taxonomy: Taxonomy, annotated: Iterable[int]) -> np.ndarray:
    """The organ stage's candidate table for a case annotating the full-index classes `annotated`: an organ is
    annotated when the case annotates it (a lesion alone says its voxels are the organ, not where the rest is)."""
    organs = organ_taxonomy(taxonomy)
    names = {taxonomy.names[i] for i in annotated}
    return candidate_table(organs, [o for o in organs.names[1:] if o in names])


def lesion_stage_classes(taxonomy: Taxonomy, annotated: Iterable[int]) -> list[str]:
    """The classes a fused case annotates in the organ + lesion stage: every organ (annotated or pseudo-labeled), a
    lesion only where the case annotated it, so that an organ voxel of an organ-only source may still be that
    organ's lesion (its candidate set, docs/architecture.md)."""
    names = {taxonomy.names[int(i)] for i in annotated}
    return [c.name for c in taxonomy.classes if not c.parents or c.name in names]


def annotated_lesions(taxonomy: Taxonomy, annotated: Iterable[int]) -> list[int]:
    """The lesion classes (classes with parents) among the full-index `annotated` classes."""
    return sorted(i for i in annotated if taxonomy.parents_of(int(i)))


def abandoned(label: np.ndarray | None, taxonomy: Taxonomy, annotated: Sequence[int]) -> bool:
    """Paper 004, 2.4: a case that annotates a lesion class but holds none of its voxels is abandoned by the organ
    + lesion stage (its 'partial label did not contain tumor class'); cases annotating no lesion are kept."""
    lesions = annotated_lesions(taxonomy, annotated)
    return bool(lesions) and (label is None or not np.isin(np.asarray(label), lesions).any())
