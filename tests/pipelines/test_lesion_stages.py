"""The progressive pipeline's label arithmetic (paper 004): lesions read as organs, abandoned cases, candidate sets."""

import numpy as np

from unimos.data.labels import candidate_table
from unimos.data.taxonomy import abdominal_taxonomy
from unimos.pipelines.lesion_stages import (
    abandoned,
    lesion_stage_classes,
    lesions_as_organs,
    organ_stage_table,
    organ_taxonomy,
)

# 1 liver, 2 kidney_right, 3 kidney_left, 4 liver_tumor, 5 kidney_tumor (inside kidney_right or kidney_left)
TAXONOMY = abdominal_taxonomy(["liver", "kidney_right", "kidney_left", "liver_tumor", "kidney_tumor"])


def _rows(table, names):
    return {names[r]: {names[c] for c in np.flatnonzero(table[r])} for r in range(len(names))}


def test_the_organ_stage_keeps_the_classes_that_lie_inside_no_other():
    assert organ_taxonomy(TAXONOMY).names == ["background", "liver", "kidney_right", "kidney_left"]


def test_lesions_become_the_organ_around_them_in_the_organ_stage():
    label = np.zeros((12, 8, 8), dtype=np.uint8)
    label[0:4, 0:4, 0:4] = 1          # liver
    label[1:3, 1:3, 1:3] = 4          # its tumour
    label[6:12, 0:4, 0:4] = 3         # left kidney
    label[7:9, 1:3, 1:3] = 5          # a kidney tumour inside it: one of two possible organs, the left by contact
    label[9, 6, 6] = 5                # a kidney tumour touching no kidney: its organ is unknown
    organs, region = lesions_as_organs(label, np.ones(label.shape, dtype=bool), TAXONOMY)
    assert (organs[0:4, 0:4, 0:4] == 1).all()                       # organ indices: 1 liver, 3 kidney_left
    assert (organs[6:12, 0:4, 0:4] == 3).all()
    assert organs[9, 6, 6] == 0 and not region[9, 6, 6]
    assert int((~region).sum()) == 1 and set(np.unique(organs)) == {0, 1, 3}


def test_a_tumour_only_case_knows_its_tumour_is_liver_but_not_where_the_rest_of_the_liver_is():
    table = organ_stage_table(TAXONOMY, [4])  # annotates liver_tumor only
    rows = _rows(table, organ_taxonomy(TAXONOMY).names)
    assert rows["liver"] == {"liver"}
    assert rows["background"] == {"background", "liver", "kidney_right", "kidney_left"}


def test_a_fused_organ_only_case_keeps_each_organs_lesion_open():
    known = lesion_stage_classes(TAXONOMY, [1])  # a liver-only source; the kidneys come from pseudo-labels
    assert known == ["liver", "kidney_right", "kidney_left"]
    table = candidate_table(TAXONOMY, known)
    rows = _rows(table, TAXONOMY.names)
    assert rows["liver"] == {"liver", "liver_tumor"}
    assert rows["kidney_right"] == {"kidney_right", "kidney_tumor"}
    assert rows["background"] == {"background"}
    full = candidate_table(TAXONOMY, lesion_stage_classes(TAXONOMY, [1, 2, 3, 4, 5]))
    assert np.array_equal(full, np.eye(TAXONOMY.num_classes, dtype=bool))


def test_a_lesion_source_case_without_lesion_voxels_is_abandoned():
    label = np.zeros((4, 4, 4), dtype=np.uint8)
    label[0:2] = 1
    assert abandoned(label, TAXONOMY, [1, 4])         # LiTS-like, annotates the tumour, has none
    label[0, 0, 0] = 4
    assert not abandoned(label, TAXONOMY, [1, 4])
    assert not abandoned(label * 0, TAXONOMY, [1])    # an organ-only case is never abandoned
    assert not abandoned(None, TAXONOMY, [])          # nor an unlabeled one
