import pytest

from unimos.data.taxonomy import abdominal_taxonomy, build_taxonomy, resolve_label_name
from unimos.errors import TaxonomyError, UnimosError


def test_canonical_taxonomy_has_background_first_and_lesion_parents():
    taxonomy = abdominal_taxonomy()
    assert taxonomy.names[0] == "background"
    for organ in ["liver", "spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "stomach", "aorta",
                  "inferior_vena_cava", "portal_and_splenic_vein", "pancreas", "adrenal_gland_right",
                  "adrenal_gland_left", "duodenum", "urinary_bladder", "prostate_or_uterus"]:
        assert organ in taxonomy.names
    liver_tumor = taxonomy.index("liver_tumor")
    assert [taxonomy.names[p] for p in taxonomy.parents_of(liver_tumor)] == ["liver"]
    assert [taxonomy.names[p] for p in taxonomy.parents_of(taxonomy.index("kidney_tumor"))] == ["kidney_right",
                                                                                                 "kidney_left"]
    assert taxonomy.children_of(taxonomy.index("pancreas")) == [taxonomy.index("pancreas_tumor")]


@pytest.mark.parametrize("dataset_name, canonical", [
    ("right kidney", "kidney_right"),          # BTCV, AMOS, CHAOS
    ("Right Kidney", "kidney_right"),
    ("kidney_L", "kidney_left"),               # WORD
    ("RAG", "adrenal_gland_right"),            # FLARE22
    ("postcava", "inferior_vena_cava"),        # AMOS
    ("gall bladder", "gallbladder"),           # AMOS
    ("portal vein and splenic vein", "portal_and_splenic_vein"),  # BTCV
    ("portal_vein_and_splenic_vein", "portal_and_splenic_vein"),  # TotalSegmentator
    ("bladder", "urinary_bladder"),            # AMOS
    ("prostate/uterus", "prostate_or_uterus"),  # AMOS
    ("IVC", "inferior_vena_cava"),             # FLARE
    ("esophagus", "esophagus"),
])
def test_dataset_label_names_resolve_to_canonical_classes(dataset_name, canonical):
    meaning = resolve_label_name(dataset_name, abdominal_taxonomy())
    assert meaning.kind == "class" and meaning.classes == (canonical,)


@pytest.mark.parametrize("context, lesion", [(["liver", "cancer"], "liver_tumor"),      # MSD Task03
                                             (["pancreas", "cancer"], "pancreas_tumor"),  # MSD Task07
                                             (["kidney", "tumor"], "kidney_tumor")])     # KiTS
def test_bare_tumor_names_take_the_organ_of_their_source(context, lesion):
    meaning = resolve_label_name(context[1], abdominal_taxonomy(), context)
    assert meaning.classes == (lesion,)


def test_known_structure_not_selected_counts_as_background():
    taxonomy = abdominal_taxonomy(["liver", "spleen"])
    assert resolve_label_name("colon", taxonomy).kind == "background"
    assert resolve_label_name("kidney_right", taxonomy).kind == "background"


def test_unknown_label_name_is_an_error_suggesting_the_closest_name():
    with pytest.raises(TaxonomyError) as info:
        resolve_label_name("spleeen", abdominal_taxonomy())
    assert "'spleen'" in str(info.value) and "Fix" in str(info.value)


def test_merged_kidney_label_resolves_to_a_sided_pair():
    taxonomy = abdominal_taxonomy(["liver", "kidney_right", "kidney_left"])
    assert resolve_label_name("kidney", taxonomy).classes == ("kidney_right", "kidney_left")
    assert resolve_label_name(["kidney_right", "kidney_left"], taxonomy).kind == "sided"
    only_left = abdominal_taxonomy(["kidney_left"])
    assert resolve_label_name("kidneys", only_left).classes == ("", "kidney_left")


def test_project_may_declare_custom_classes_but_not_typos():
    cardiac = build_taxonomy(["RV", "myocardium", {"name": "scar", "parent": "myocardium"}])
    assert cardiac.names == ["background", "right_ventricle", "myocardium", "scar"]
    assert cardiac.parents_of(3) == [2]
    with pytest.raises(TaxonomyError):
        build_taxonomy(["livr"])


def test_subset_keeps_the_order_the_project_chose():
    taxonomy = abdominal_taxonomy(["spleen", "liver", "liver_tumor"])
    assert taxonomy.names == ["background", "spleen", "liver", "liver_tumor"]
    assert taxonomy.parents_of(3) == [2]


def test_taxonomy_json_round_trip():
    taxonomy = abdominal_taxonomy()
    assert type(taxonomy).from_json(taxonomy.to_json()) == taxonomy


@pytest.mark.parametrize("name, context", [("liver_tumor", []), ("tumor", ["liver", "tumor"]),  # LiTS
                                           ("cancer", ["liver", "cancer"])])                   # MSD Task03
def test_unselected_liver_lesion_is_read_as_liver(name, context):
    meaning = resolve_label_name(name, abdominal_taxonomy(["liver", "spleen"]), context)
    assert (meaning.kind, meaning.classes, meaning.part) == ("class", ("liver",), True)


def test_unselected_kidney_lesion_is_read_as_the_kidney_on_its_side():
    meaning = resolve_label_name("tumor", abdominal_taxonomy(["kidney_right", "kidney_left"]), ["kidney", "tumor"])
    assert (meaning.kind, meaning.classes, meaning.part) == ("sided", ("kidney_right", "kidney_left"), True)


def test_lesion_of_an_unselected_organ_is_background_like_its_organ():
    assert resolve_label_name("pancreas_tumor", abdominal_taxonomy(["liver"])).kind == "background"


def test_selected_lesion_keeps_its_own_class():
    meaning = resolve_label_name("tumor", abdominal_taxonomy(["liver", "liver_tumor"]), ["liver", "tumor"])
    assert (meaning.classes, meaning.part) == (("liver_tumor",), False)


PAN_TUMOR = {"name": "tumor", "parent": ["liver", "kidney_right", "kidney_left", "pancreas"]}


def test_a_lesion_of_several_organs_takes_every_organs_lesions():
    taxonomy = build_taxonomy(["liver", "kidney_right", "kidney_left", "pancreas", PAN_TUMOR])
    assert taxonomy.classes[-1].parents == ("liver", "kidney_right", "kidney_left", "pancreas")
    # FLARE23's pan-cancer "Tumor" beside several organs, and the organ-specific names of LiTS / KiTS / MSD
    for name, context in [("Tumor", ["liver", "kidney", "pancreas", "Tumor"]), ("liver_tumor", []),
                          ("kidney_tumor", []), ("tumor", ["pancreas", "tumor"])]:
        assert resolve_label_name(name, taxonomy, context).classes == ("tumor",)


def test_an_ambiguous_bare_tumor_names_the_several_organ_declaration_as_fix():
    with pytest.raises(TaxonomyError, match=r"\{name: tumor, parent: \[liver, kidney_right"):
        resolve_label_name("Tumor", abdominal_taxonomy(), ["liver", "kidney", "pancreas", "Tumor"])


def test_a_lesion_whose_organ_is_not_a_class_is_refused_with_the_fix():
    with pytest.raises(TaxonomyError) as info:
        build_taxonomy(["spleen", "liver_tumor"])
    assert "lesion class 'liver_tumor' lies inside liver, which is not a project class" in str(info.value)
    assert "add liver to the classes" in str(info.value)


def test_every_orphan_lesion_and_missing_declared_parent_is_listed_at_once():
    with pytest.raises(UnimosError) as info:
        build_taxonomy(["spleen", "kidney_tumor", {"name": "lesion", "parent": ["liver", "spleen"]}])
    assert [p.problem for p in info.value.problems] == [
        "lesion class 'kidney_tumor' lies inside kidney_right or kidney_left, none of which is a project class",
        "class 'lesion' names parent(s) ['liver'] that are not project classes"]
