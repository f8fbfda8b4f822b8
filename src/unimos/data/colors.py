"""One colour and one anatomy code per class, shared by the HTML report and the viewer outputs (.seg.nrrd, DICOM SEG).

Colours follow 3D Slicer's GenericAnatomyColors table (`Slicer/Slicer`,
`Base/Logic/Resources/ColorFiles/GenericAnatomyColors.txt`, the "Slicer3:2010 GenericAnatomyColors" lookup
table), which is also what Slicer's "General Anatomy" terminology recommends for display; a segmentation opened
in Slicer therefore looks the way Slicer users expect. Where that table gives both sides of a paired organ one
colour (kidneys, adrenal glands, parotid glands) the left one is drawn 15% darker, so the two stay apart. Where it
has no entry the nearest structure it does have is used, named in a comment. A name the table does not know (a
project's own class) gets a deterministic fallback colour from a hash of its name, kept away from every colour in
the table; `color_table` also keeps such colours apart from each other.

Anatomy codes are SNOMED CT (scheme designator SCT), each checked against the DICOM code dictionary that pydicom
ships (`pydicom.sr.codedict.codes.SCT`, from DICOM PS3.16) and Slicer's DICOM terminology
(`SegmentationCategoryTypeModifier-DICOM-Master.json`). Two classes have no single code and stay uncoded:
`portal_and_splenic_vein` (two veins in one label) and `prostate_or_uterus` (one of two organs by sex).
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from unimos.data.catalogue import normalise_name
from unimos.data.taxonomy import canonical_name

RGB = tuple[int, int, int]

CONVENTION = "3D Slicer GenericAnatomyColors"
BACKGROUND_COLOR: RGB = (0, 0, 0)


def _left(rgb: RGB) -> RGB:
    """The left member of a pair Slicer colours alike: 15% darker, the same hue."""
    return tuple(int(round(0.85 * c)) for c in rgb)  # type: ignore[return-value]


# GenericAnatomyColors entries (label id and name in that table in the comment).
_LIVER, _SPLEEN, _KIDNEY = (221, 130, 101), (157, 108, 162), (185, 102, 83)   # 216 liver, 220 spleen, 222 right_kidney
_ADRENAL, _SALIVARY, _MASS = (249, 186, 150), (70, 163, 117), (144, 238, 144)  # 228 right_adrenal_gland, 127, 7 mass

_CLASS_COLORS: dict[str, RGB] = {
    "liver": _LIVER,
    "spleen": _SPLEEN,
    "kidney_right": _KIDNEY,
    "kidney_left": _left(_KIDNEY),                # 223 left_kidney has the same colour as the right one
    "gallbladder": (139, 150, 98),                # 218 gallbladder
    "esophagus": (211, 171, 143),                 # 194 esophagus
    "stomach": (216, 132, 105),                   # 211 stomach
    "aorta": (224, 97, 76),                       # 191 aorta
    "inferior_vena_cava": (0, 151, 206),          # 16 vein (the table has no vena cava)
    "portal_and_splenic_vein": (0, 122, 171),     # 288 pulmonary_arterial_system: a darker vein blue, no portal vein
    "pancreas": (249, 180, 111),                  # 219 pancreas
    "adrenal_gland_right": _ADRENAL,
    "adrenal_gland_left": _left(_ADRENAL),        # 229 left_adrenal_gland has the same colour as the right one
    "duodenum": (255, 253, 229),                  # 212 duodenum
    "urinary_bladder": (222, 154, 132),           # 226 urinary_bladder
    "prostate_or_uterus": (230, 158, 140),        # 238 prostate
    "liver_tumor": _MASS,
    "kidney_tumor": _left(_MASS),                 # the table has one "mass": shades of it for the other organs
    "pancreas_tumor": _left(_left(_MASS)),
    "right_ventricle": (181, 85, 57),             # 185 right_ventricle_of_heart
    "myocardium": (206, 110, 84),                 # 180 heart (the table has no myocardium)
    "left_ventricle": (152, 55, 13),              # 186 left_ventricle_of_heart
    "brainstem": (145, 92, 109),                  # 69 midbrain (the table has no brainstem)
    "spinal_cord": (244, 214, 49),                # 115 spinal_cord
    "parotid_gland_right": _SALIVARY,             # 127 salivary_glands (the table has no parotid)
    "parotid_gland_left": _left(_SALIVARY),
    "larynx": (150, 208, 243),                    # 162 larynx
    "mandible": (222, 198, 101),                  # 158 mandible
}
CLASS_COLORS: Mapping[str, RGB] = MappingProxyType(_CLASS_COLORS)
"""Canonical class name -> (red, green, blue), 0-255."""

# A project may select a pair as one class (catalogue.SIDED_PAIRS): it takes the right member's colour.
_PAIR_COLORS: dict[str, RGB] = {"kidney": _KIDNEY, "adrenal_gland": _ADRENAL, "parotid_gland": _SALIVARY}

_FALLBACK_MIN_DISTANCE = 40.0  # RGB distance a fallback colour keeps from the table and earlier fallbacks


def _distance(a: RGB, b: RGB) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5)


def _hashed_color(key: str, attempt: int) -> RGB:
    """A saturated, mid-to-light colour from a hash of `key` (hue anywhere, never near black or white)."""
    digest = hashlib.sha256(f"{key}#{attempt}".encode()).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    saturation = 0.45 + 0.4 * digest[2] / 255
    value = 0.65 + 0.3 * digest[3] / 255
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


def _fallback_color(key: str, taken: Iterable[RGB]) -> RGB:
    """The first hashed colour for `key` that keeps its distance from every colour in `taken`."""
    taken = list(taken)
    for attempt in range(1000):
        rgb = _hashed_color(key, attempt)
        if all(_distance(rgb, other) >= _FALLBACK_MIN_DISTANCE for other in taken):
            return rgb
    return _hashed_color(key, 0)  # unreachable in practice: the colour space has room for far more classes


def _key(name: str) -> str:
    """The canonical name when `name` is a known structure (synonyms resolved), else its normalised form."""
    return canonical_name(name) or normalise_name(name)


def _table_color(key: str) -> RGB | None:
    """The colour the convention gives a canonical key, or None when it gives none."""
    if key == "background":
        return BACKGROUND_COLOR
    return CLASS_COLORS.get(key) or _PAIR_COLORS.get(key)


def class_color(name: str) -> RGB:
    """The display colour of one class (synonyms accepted); unknown names get a deterministic fallback colour."""
    key = _key(name)
    known = _table_color(key)
    return known if known is not None else _fallback_color(key, CLASS_COLORS.values())


def color_table(names: Iterable[str]) -> dict[str, RGB]:
    """Colour per name (keys as given), all different: known classes from the table, unknown ones kept apart."""
    table: dict[str, RGB] = {}
    taken = list(CLASS_COLORS.values())
    for name in names:
        key = _key(name)
        known = _table_color(key)
        if known is None:
            known = _fallback_color(key, taken)
            taken.append(known)
        table[name] = known
    return table


def rgb_unit(rgb: RGB) -> tuple[float, float, float]:
    """(r, g, b) in 0-1, as 3D Slicer stores segment colours."""
    return tuple(c / 255 for c in rgb)  # type: ignore[return-value]


def rgb_hex(rgb: RGB) -> str:
    """'#rrggbb' for HTML and matplotlib."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ----------------------------------------------------------------------------------------------- anatomy codes


@dataclass(frozen=True)
class Concept:
    """One coded concept: code value, coding scheme designator ('SCT' = SNOMED CT) and code meaning."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class AnatomyCoding:
    """How a class is coded in DICOM SEG and Slicer terminology.

    category/type: the segmented property category and type; type_modifier: laterality of a paired organ;
    region: for a lesion, the organ it lies in.
    """

    category: Concept
    type: Concept
    type_modifier: Concept | None = None
    region: Concept | None = None


ANATOMICAL_STRUCTURE = Concept("123037004", "SCT", "Anatomical Structure")  # Slicer's and DICOM CID 7150's category
ALTERED_STRUCTURE = Concept("49755003", "SCT", "Morphologically Altered Structure")
TISSUE = Concept("85756007", "SCT", "Tissue")  # what Slicer gives a segment it knows nothing about
NEOPLASM = Concept("108369006", "SCT", "Neoplasm")
RIGHT = Concept("24028007", "SCT", "Right")
LEFT = Concept("7771000", "SCT", "Left")

_ORGAN_CODES: dict[str, Concept] = {
    "liver": Concept("10200004", "SCT", "Liver"),
    "spleen": Concept("78961009", "SCT", "Spleen"),
    "kidney": Concept("64033007", "SCT", "Kidney"),
    "gallbladder": Concept("28231008", "SCT", "Gallbladder"),
    "esophagus": Concept("32849002", "SCT", "Esophagus"),
    "stomach": Concept("69695003", "SCT", "Stomach"),
    "aorta": Concept("15825003", "SCT", "Aorta"),
    "inferior_vena_cava": Concept("64131007", "SCT", "Inferior vena cava"),
    "pancreas": Concept("15776009", "SCT", "Pancreas"),
    "adrenal_gland": Concept("23451007", "SCT", "Adrenal gland"),
    "duodenum": Concept("38848004", "SCT", "Duodenum"),
    "urinary_bladder": Concept("89837001", "SCT", "Urinary bladder"),
    "right_ventricle": Concept("53085002", "SCT", "Right ventricle"),
    "left_ventricle": Concept("87878005", "SCT", "Left ventricle"),
    # ACDC's myocardium label is the left ventricle's wall (catalogue: left_ventricular_myocardium -> myocardium).
    "myocardium": Concept("49848007", "SCT", "Left ventricle myocardium"),
    "brainstem": Concept("119238007", "SCT", "Brain stem"),
    "spinal_cord": Concept("2748008", "SCT", "Spinal cord"),
    "parotid_gland": Concept("45289007", "SCT", "Parotid gland"),
    "larynx": Concept("4596009", "SCT", "Larynx"),
    "mandible": Concept("91609006", "SCT", "Mandible"),
}
_SIDED = {"kidney_right": ("kidney", RIGHT), "kidney_left": ("kidney", LEFT),
          "adrenal_gland_right": ("adrenal_gland", RIGHT), "adrenal_gland_left": ("adrenal_gland", LEFT),
          "parotid_gland_right": ("parotid_gland", RIGHT), "parotid_gland_left": ("parotid_gland", LEFT)}
_LESION_ORGAN = {"liver_tumor": "liver", "kidney_tumor": "kidney", "pancreas_tumor": "pancreas"}
UNCODED_CLASSES: frozenset[str] = frozenset({"portal_and_splenic_vein", "prostate_or_uterus"})
"""Canonical classes without a single SNOMED CT concept; they get the generic coding."""


def class_coding(name: str) -> AnatomyCoding | None:
    """The SNOMED CT coding of a class (synonyms accepted), or None when it has no code of its own."""
    key = _key(name)
    if key in _LESION_ORGAN:
        return AnatomyCoding(ALTERED_STRUCTURE, NEOPLASM, region=_ORGAN_CODES[_LESION_ORGAN[key]])
    if key in _SIDED:
        organ, side = _SIDED[key]
        return AnatomyCoding(ANATOMICAL_STRUCTURE, _ORGAN_CODES[organ], type_modifier=side)
    if key in _ORGAN_CODES:
        return AnatomyCoding(ANATOMICAL_STRUCTURE, _ORGAN_CODES[key])
    return None


def generic_coding() -> AnatomyCoding:
    """The coding of a class without a code of its own: Slicer's default for an unnamed segment (Tissue, Tissue)."""
    return AnatomyCoding(TISSUE, TISSUE)
