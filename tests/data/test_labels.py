import numpy as np

from unimos.data.labels import body_midline_x, candidate_table, slice_region, split_sided
from unimos.data.taxonomy import abdominal_taxonomy, build_taxonomy
from unimos.data.volume import Volume


def _set(table, taxonomy, label):
    return {taxonomy.names[c] for c in np.flatnonzero(table[taxonomy.index(label) if label != "background" else 0])}


def test_liver_voxel_without_tumour_labels_may_be_tumour():
    taxonomy = abdominal_taxonomy(["liver", "spleen", "liver_tumor"])
    table = candidate_table(taxonomy, ["liver"])
    assert _set(table, taxonomy, "liver") == {"liver", "liver_tumor"}
    # labeled 0 by a liver-only source: not liver, so not liver tumour either; spleen unknown
    assert _set(table, taxonomy, "background") == {"background", "spleen"}


def test_full_annotation_gives_singleton_candidate_sets():
    taxonomy = abdominal_taxonomy(["liver", "spleen", "liver_tumor"])
    table = candidate_table(taxonomy, taxonomy.names[1:])
    assert np.array_equal(table, np.eye(taxonomy.num_classes, dtype=bool))


def test_tumour_only_source_leaves_the_organ_open():
    taxonomy = abdominal_taxonomy(["liver", "liver_tumor"])
    table = candidate_table(taxonomy, ["liver_tumor"])
    assert _set(table, taxonomy, "background") == {"background", "liver"}
    assert _set(table, taxonomy, "liver_tumor") == {"liver_tumor"}


def test_kidney_tumour_stays_possible_in_the_unannotated_kidney():
    taxonomy = abdominal_taxonomy(["kidney_right", "kidney_left", "kidney_tumor"])
    table = candidate_table(taxonomy, ["kidney_right"])
    assert _set(table, taxonomy, "background") == {"background", "kidney_left", "kidney_tumor"}
    both = candidate_table(taxonomy, ["kidney_right", "kidney_left"])
    assert _set(both, taxonomy, "background") == {"background"}


def test_merged_kidney_mask_splits_by_body_side_in_world_coordinates():
    mask = np.zeros((20, 6, 6), dtype=bool)
    mask[2:5, 2:4, 2:4] = True     # low i
    mask[15:18, 2:4, 2:4] = True   # high i
    ras = np.eye(4)  # RAS+: world x grows towards the patient's right
    sides = split_sided(mask, ras, midline_x=10.0)
    assert set(np.unique(sides[15:18, 2:4, 2:4])) == {1}  # x > midline: patient's right
    assert set(np.unique(sides[2:5, 2:4, 2:4])) == {2}
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # +i points to the patient's left
    sides = split_sided(mask, lps, midline_x=-10.0)
    assert set(np.unique(sides[2:5, 2:4, 2:4])) == {1}
    assert set(np.unique(sides[15:18, 2:4, 2:4])) == {2}


def test_slice_region_marks_only_listed_slices():
    region = slice_region((4, 5, 6), {2: (1, 4), 0: (3,)})
    assert region[:, :, 1].all() and region[:, :, 4].all() and region[3].all()
    assert not region[0, 0, 0] and region.sum() == 4 * 5 * 2 + 5 * 6 - 5 * 2


def test_organ_only_source_lets_each_organ_hold_a_lesion_of_several_organs():
    taxonomy = build_taxonomy(["liver", "kidney_right", "kidney_left", "pancreas",
                               {"name": "tumor", "parent": ["liver", "kidney_right", "kidney_left", "pancreas"]}])
    table = candidate_table(taxonomy, ["liver", "pancreas"])  # an organ-only source: no lesion annotated
    assert _set(table, taxonomy, "liver") == {"liver", "tumor"}
    assert _set(table, taxonomy, "pancreas") == {"pancreas", "tumor"}
    # outside the annotated organs a voxel may still be a kidney, or a kidney's tumour
    assert _set(table, taxonomy, "background") == {"background", "kidney_right", "kidney_left", "tumor"}


def test_body_midline_is_the_mean_x_of_the_body_voxels_in_world_mm():
    image = np.full((10, 3, 2), -1000.0)
    image[2:5, :, :] = 40.0  # body voxels at i = 2, 3, 4 ...
    image[8, 0, 0] = 40.0  # ... and one at i = 8: mean i = (3 * 6 * 3 + 8) / 19 = 62 / 19
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    affine[0, 3] = -5.0  # x = 2 i - 5
    assert abs(body_midline_x(Volume(image, affine), "CT") - (2 * 62 / 19 - 5)) < 1e-9
    # no body at all: the volume's centre, i = 4.5
    assert body_midline_x(Volume(np.full((10, 3, 2), -1000.0), affine), "CT") == 4.0
