"""The structures unimos knows by name: canonical classes, their parents, and the label names public datasets use.

Names follow TotalSegmentator's snake_case where one exists. Synonyms are matched after normalisation
(lower case, spaces/dashes -> underscores), so "Right Kidney", "right-kidney" and "kidney_R" all resolve.
"""

from __future__ import annotations

import re

# Canonical abdominal classes in their default order, with the parent organ of each lesion class.
ABDOMINAL_CLASSES: tuple[tuple[str, str | None], ...] = (
    ("liver", None),
    ("spleen", None),
    ("kidney_right", None),
    ("kidney_left", None),
    ("gallbladder", None),
    ("esophagus", None),
    ("stomach", None),
    ("aorta", None),
    ("inferior_vena_cava", None),
    ("portal_and_splenic_vein", None),
    ("pancreas", None),
    ("adrenal_gland_right", None),
    ("adrenal_gland_left", None),
    ("duodenum", None),
    ("urinary_bladder", None),
    ("prostate_or_uterus", None),
    ("liver_tumor", "liver"),
    ("kidney_tumor", "kidney"),  # either kidney: resolved to the selected kidney classes
    ("pancreas_tumor", "pancreas"),
)

# Other structures with names of their own (cardiac MR, head and neck), usable as project classes.
OTHER_CLASSES: tuple[tuple[str, str | None], ...] = (
    ("right_ventricle", None),
    ("myocardium", None),
    ("left_ventricle", None),
    ("brainstem", None),
    ("spinal_cord", None),
    ("parotid_gland_right", None),
    ("parotid_gland_left", None),
    ("larynx", None),
    ("mandible", None),
)

# Structures that public label sets contain but no preset selects. A source label naming one of them is
# certainly none of the project's classes (background for the project) unless the project selects it.
OTHER_KNOWN_STRUCTURES: frozenset[str] = frozenset({
    "colon", "small_bowel", "intestine", "rectum", "sigmoid", "bowel_bag", "lung_upper_lobe_left",
    "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right",
    "lung_left", "lung_right", "lung", "trachea", "thyroid_gland", "heart", "brain", "skull", "sternum",
    "spine", "vertebrae", "rib", "femur_left", "femur_right", "hip_left", "hip_right", "sacrum",
    "kidney_cyst_left", "kidney_cyst_right", "kidney_cyst", "hepatic_vessel", "hepatic_tumor",
    "pulmonary_vein", "pulmonary_artery", "iliac_artery_left", "iliac_artery_right", "iliac_vena_left",
    "iliac_vena_right", "gluteus_maximus_left", "gluteus_maximus_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right", "spinal_canal", "skin", "body", "fat", "muscle", "bone",
    "optic_nerve_left", "optic_nerve_right", "eye_left", "eye_right", "pituitary_gland", "lens",
    "right_atrium", "left_atrium",
})

# Sided structures: the name of the pair -> (right member, left member). A merged label naming the pair is
# split by body side.
SIDED_PAIRS: dict[str, tuple[str, str]] = {
    "kidney": ("kidney_right", "kidney_left"),
    "adrenal_gland": ("adrenal_gland_right", "adrenal_gland_left"),
    "parotid_gland": ("parotid_gland_right", "parotid_gland_left"),
}

# Label names of public datasets (FLARE22/23, AMOS, BTCV, WORD, TotalSegmentator, MSD, KiTS, LiTS, CHAOS, ACDC,
# OpenKBP) -> canonical name. Keys are normalised (see `normalise_name`).
SYNONYMS: dict[str, str] = {
    # kidneys
    "right_kidney": "kidney_right", "kidney_r": "kidney_right", "rk": "kidney_right", "r_kidney": "kidney_right",
    "left_kidney": "kidney_left", "kidney_l": "kidney_left", "lk": "kidney_left", "l_kidney": "kidney_left",
    "kidneys": "kidney",
    # adrenals (FLARE: RAG/LAG; WORD: adrenal)
    "right_adrenal_gland": "adrenal_gland_right", "rag": "adrenal_gland_right",
    "adrenal_gland_r": "adrenal_gland_right",
    "right_adrenal": "adrenal_gland_right",
    "left_adrenal_gland": "adrenal_gland_left", "lag": "adrenal_gland_left", "adrenal_gland_l": "adrenal_gland_left",
    "left_adrenal": "adrenal_gland_left",
    "adrenal": "adrenal_gland", "adrenal_glands": "adrenal_gland",
    # gallbladder (AMOS: "gall bladder")
    "gall_bladder": "gallbladder", "gb": "gallbladder",
    # esophagus
    "oesophagus": "esophagus", "eso": "esophagus",
    # vessels
    "ivc": "inferior_vena_cava", "postcava": "inferior_vena_cava", "vena_cava_inferior": "inferior_vena_cava",
    "portal_vein_and_splenic_vein": "portal_and_splenic_vein", "portal_vein_splenic_vein": "portal_and_splenic_vein",
    "portal_splenic_vein": "portal_and_splenic_vein", "psv": "portal_and_splenic_vein",
    "portal_vein": "portal_and_splenic_vein",
    "abdominal_aorta": "aorta",
    # bladder, prostate/uterus (AMOS, TotalSegmentator, WORD)
    "bladder": "urinary_bladder", "prostate": "prostate_or_uterus", "uterus": "prostate_or_uterus",
    "prostate_uterus": "prostate_or_uterus", "prostate/uterus": "prostate_or_uterus",
    # lesions (MSD, LiTS, KiTS, FLARE23); bare "tumor" / "cancer" are resolved from the other labels of the source
    "liver_tumour": "liver_tumor", "liver_cancer": "liver_tumor", "liver_lesion": "liver_tumor",
    "kidney_tumour": "kidney_tumor", "kidney_cancer": "kidney_tumor", "renal_tumor": "kidney_tumor",
    "pancreas_tumour": "pancreas_tumor", "pancreas_cancer": "pancreas_tumor", "pancreatic_tumor": "pancreas_tumor",
    # other organs under other names
    "duodenum_": "duodenum", "gut": "small_bowel", "small_intestine": "small_bowel",
    # cardiac (ACDC)
    "rv": "right_ventricle", "right_ventricle_cavity": "right_ventricle", "myo": "myocardium",
    "lv": "left_ventricle", "lv_cavity": "left_ventricle", "left_ventricle_cavity": "left_ventricle",
    "left_ventricular_myocardium": "myocardium",
    # head and neck (OpenKBP)
    "parotid_r": "parotid_gland_right", "right_parotid": "parotid_gland_right", "parotid_right": "parotid_gland_right",
    "parotid_l": "parotid_gland_left", "left_parotid": "parotid_gland_left", "parotid_left": "parotid_gland_left",
    "cord": "spinal_cord", "spinalcord": "spinal_cord", "brain_stem": "brainstem",
    # WORD's femur heads, rectum, colon map to other known structures
    "head_of_femur_l": "femur_left", "head_of_femur_r": "femur_right",
}

# Names that mean a lesion of whichever organ the same source annotates (MSD "cancer", KiTS/LiTS "tumor").
GENERIC_LESION_NAMES: frozenset[str] = frozenset({"tumor", "tumour", "cancer", "lesion", "tumor_and_cyst"})
LESION_OF_ORGAN: dict[str, str] = {
    "liver": "liver_tumor", "kidney": "kidney_tumor", "kidney_right": "kidney_tumor",
    "kidney_left": "kidney_tumor", "pancreas": "pancreas_tumor",
}

BACKGROUND_NAMES: frozenset[str] = frozenset({"background", "bg", "clear_label", "none", "0"})
IGNORE_NAMES: frozenset[str] = frozenset({"ignore", "unlabeled", "unannotated", "unknown"})


def normalise_name(name: str) -> str:
    """Lower case, with spaces, dashes and dots as underscores, no repeated or trailing underscores."""
    text = re.sub(r"[\s\-\.]+", "_", str(name).strip().lower())
    return re.sub(r"_+", "_", text).strip("_")


def canonical_names() -> list[str]:
    """Every class name unimos knows as a possible project class."""
    return [name for name, _ in ABDOMINAL_CLASSES + OTHER_CLASSES]


def default_parent(name: str) -> str | None:
    """The parent organ a canonical class is contained in, if any."""
    for known, parent in ABDOMINAL_CLASSES + OTHER_CLASSES:
        if known == name:
            return parent
    return None


def is_sided(name: str) -> bool:
    """Whether a class is one of a mirror pair (kidney_left, parotid_gland_right, lung_upper_lobe_left...): a
    left-right flip turns it into its partner, so flips do not preserve its label. Heart chambers are named by side
    but are different structures (left_ventricle is not a mirrored right_ventricle), so they are not sided."""
    parts = normalise_name(name).split("_")
    return bool({"left", "right"} & set(parts)) and not {"ventricle", "atrium"} & set(parts)
