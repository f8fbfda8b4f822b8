"""The colour and code table: every canonical class shown and coded the way 3D Slicer and DICOM expect."""

from __future__ import annotations

import itertools

from pydicom.sr.codedict import codes

from unimos.data import catalogue
from unimos.data.colors import (
    CLASS_COLORS,
    LEFT,
    NEOPLASM,
    RIGHT,
    UNCODED_CLASSES,
    class_coding,
    class_color,
    color_table,
    generic_coding,
    rgb_hex,
    rgb_unit,
)


def _distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def test_every_canonical_class_has_a_colour_of_the_table():
    missing = [name for name in catalogue.canonical_names() if name not in CLASS_COLORS]
    assert missing == []
    assert all(len(rgb) == 3 and all(0 <= c <= 255 for c in rgb) for rgb in CLASS_COLORS.values())


def test_canonical_colours_are_distinct():
    colours = [CLASS_COLORS[name] for name in catalogue.canonical_names()]
    assert len(set(colours)) == len(colours)


def test_colours_are_slicer_generic_anatomy_colours():
    # Copied by hand from Slicer's GenericAnatomyColors.txt (label ids 216, 220, 191, 219, 115, 162).
    assert class_color("liver") == (221, 130, 101)
    assert class_color("spleen") == (157, 108, 162)
    assert class_color("aorta") == (224, 97, 76)
    assert class_color("pancreas") == (249, 180, 111)
    assert class_color("spinal_cord") == (244, 214, 49)
    assert class_color("larynx") == (150, 208, 243)


def test_left_member_of_a_pair_is_the_right_colour_darkened():
    # Slicer gives both kidneys (185, 102, 83); the left one is 15% darker so the two differ.
    assert class_color("kidney_right") == (185, 102, 83)
    assert class_color("kidney_left") == (157, 87, 71)


def test_synonyms_share_the_canonical_colour():
    assert class_color("Right Kidney") == class_color("kidney_right")
    assert class_color("IVC") == class_color("inferior_vena_cava")
    assert class_color("background") == (0, 0, 0)


def test_unknown_names_get_a_deterministic_colour_away_from_the_table():
    first, again = class_color("tumor_core"), class_color("tumor_core")
    assert first == again
    assert min(_distance(first, known) for known in CLASS_COLORS.values()) >= 40


def test_color_table_keeps_many_custom_classes_apart():
    names = ["liver"] + [f"custom_structure_{i}" for i in range(25)]
    table = color_table(names)
    assert table["liver"] == CLASS_COLORS["liver"]
    custom = [table[n] for n in names[1:]]
    assert min(_distance(a, b) for a, b in itertools.combinations(custom, 2)) >= 40


def test_colour_forms_for_slicer_and_html():
    assert rgb_unit((255, 0, 51)) == (1.0, 0.0, 0.2)
    assert rgb_hex((221, 130, 101)) == "#dd8265"


def test_organs_carry_their_snomed_code():
    assert class_coding("liver").type.value == "10200004"
    assert class_coding("spleen").type.value == "78961009"
    assert class_coding("aorta").type.value == "15825003"
    assert class_coding("liver").category.value == "123037004"  # Anatomical Structure


def test_sided_organs_carry_laterality():
    left = class_coding("kidney_left")
    assert (left.type.value, left.type_modifier) == ("64033007", LEFT)
    assert class_coding("adrenal_gland_right").type_modifier == RIGHT


def test_a_tumour_is_a_neoplasm_in_its_organ():
    coding = class_coding("pancreas_tumor")
    assert coding.category.value == "49755003"  # Morphologically Altered Structure
    assert coding.type == NEOPLASM
    assert coding.region.value == "15776009"


def test_classes_without_a_single_concept_stay_uncoded():
    assert all(class_coding(name) is None for name in UNCODED_CLASSES)
    assert class_coding("my_own_class") is None
    assert generic_coding().type.meaning == "Tissue"


def test_every_code_is_in_the_dicom_snomed_dictionary():
    known = {getattr(codes.SCT, name).value for name in codes.SCT.dir()}
    used = set()
    for name in catalogue.canonical_names():
        coding = class_coding(name)
        if coding is None:
            continue
        used |= {c.value for c in (coding.category, coding.type, coding.type_modifier, coding.region) if c}
    assert used - known == set()
    assert len(used) > 20
