"""The demo collection's layout (DemoSource, SOURCES, SSL_SOURCES) and its writing: one case per phantom (image,
label files, RAS or LPS), the two manifests and README.md (`make_demo_data`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from unimos.errors import OutputError
from unimos.phantoms.anatomy import ALL_CLASSES, CLASSES, LESIONS, rasterise
from unimos.phantoms.imaging import ct_image, mr_image
from unimos.phantoms.shapes import Grid
from unimos.utils.atomic import atomic_path, write_text_atomic


def _label_values(classes: tuple[str, ...]) -> dict[int, str]:
    """Label value i+1 -> classes[i], the complete label files' numbering."""
    return {i + 1: name for i, name in enumerate(classes)}


ORGAN_LABELS: dict[int, str] = _label_values(CLASSES)
COMPLETE_LABELS: dict[int, str] = _label_values(ALL_CLASSES)
"""The complete label files' values: the nine organs, then the three lesion classes."""

FOV_LR_MM = 240.0
FOV_AP_MM = 180.0
FOV_SI_MM = (150.0, 180.0)
INPLANE_MM = (0.7, 1.5)
INPLANE_QUICK_MM = (1.2, 1.5)
SLICE_MM = (1.5, 5.0)
SLICE_QUICK_MM = (3.0, 5.0)
MAX_VOXELS = 4_500_000
"""Per-case voxel budget (2 CPU cores): fine in-plane spacings are drawn with thicker slices."""
SPARSE_STEP = 5

LabelName = str | tuple[str, str]


@dataclass(frozen=True)
class DemoSource:
    """One source of the demo collection and how its label files are written.

    `lesion_share`: (lesion class, chance that a patient of this source has 1-3 such lesions); lesion classes not
    listed are never drawn. A source that does not name a lesion class in `labels` writes its voxels as the organ
    around it, as organ-only datasets do.
    """

    name: str
    modality: str
    kind: str
    count: int
    quick_count: int
    labels: dict[int, LabelName] | None
    split: str = "train"
    lesion_share: tuple[tuple[str, float], ...] = ()


LESION_SHARE = 0.3
"""The chance that a patient of any source has lesions of a given class (its organs not diseased otherwise)."""


def _shares(**own: float) -> tuple[tuple[str, float], ...]:
    """Every lesion class at LESION_SHARE, the ones named in `own` at their own share."""
    return tuple((lesion, own.get(lesion, LESION_SHARE)) for lesion in LESIONS)


# Shaped like the public sets that hospitals and researchers combine: single-organ sets that also label that organ's
# tumours (LiTS, KiTS with both kidneys in one value, MSD pancreas), an organ-only set (MSD spleen), a vessel set,
# a few fully labeled multi-organ CTs that label organs only (BTCV), an MR set (CHAOS, with its label values), a
# sparsely labeled set, many unlabeled scans (FLARE). A tumour source's patients mostly have that tumour (0.8: some
# have none, as in LiTS, which the progressive pipeline leaves out); every patient of every source may carry lesions
# that its labels do not name. The held-out test CTs carry every lesion class and label everything.
SOURCES: tuple[DemoSource, ...] = (
    DemoSource("lits_like", "CT", "partial", 4, 2, {1: "liver", 2: "liver_tumor"},
               lesion_share=_shares(liver_tumor=0.8)),
    DemoSource("kits_like", "CT", "partial", 4, 2, {1: ("kidney_right", "kidney_left"), 2: "kidney_tumor"},
               lesion_share=_shares(kidney_tumor=0.8)),
    DemoSource("msd_pancreas_like", "CT", "partial", 4, 2, {1: "pancreas", 2: "pancreas_tumor"},
               lesion_share=_shares(pancreas_tumor=0.8)),
    DemoSource("msd_spleen_like", "CT", "partial", 3, 1, {1: "spleen"}, lesion_share=_shares()),
    DemoSource("vessels_like", "CT", "partial", 3, 1, {1: "aorta", 2: "inferior_vena_cava"},
               lesion_share=_shares()),
    DemoSource("btcv_like", "CT", "partial", 2, 1, dict(ORGAN_LABELS), lesion_share=_shares()),
    DemoSource("chaos_like_mr", "MR", "partial", 4, 2,
               {63: "liver", 126: "kidney_right", 189: "kidney_left", 252: "spleen"}, lesion_share=_shares()),
    DemoSource("ct_sparse", "CT", "sparse", 3, 1, dict(ORGAN_LABELS), lesion_share=_shares()),
    DemoSource("ct_unlabeled", "CT", "unlabeled", 12, 4, None, lesion_share=_shares()),
    DemoSource("ct_test", "CT", "full", 5, 2, dict(COMPLETE_LABELS), split="test",
               lesion_share=_shares(liver_tumor=1.0, kidney_tumor=1.0, pancreas_tumor=1.0)),
)

# The semi-supervised demo (`unimos demo --ssl`): labels scarce, unlabeled scans plenty, so that what the unlabeled
# scans carry can show (with 3 labeled CTs and 6 unlabeled, their complete labels added only +0.012 mean DSC at
# 500 iterations: bench/README.md, "Semi-supervised ceiling"). Counts chosen by measuring that ceiling on a
# development seed (bench/ssl_variants.py).
# Its phantoms carry no lesions (the collection it was measured on).
SSL_SOURCES: tuple[DemoSource, ...] = (
    DemoSource("ct_labeled", "CT", "full", 1, 1, dict(ORGAN_LABELS)),
    DemoSource("ct_unlabeled", "CT", "unlabeled", 12, 4, None),
    DemoSource("ct_test", "CT", "full", 5, 2, dict(ORGAN_LABELS), split="test"),
)


def collection_classes(sources: tuple[DemoSource, ...]) -> tuple[str, ...]:
    """The project classes of a collection: the organs, and the lesion classes where its phantoms draw lesions."""
    return ALL_CLASSES if any(share for s in sources for _, share in s.lesion_share) else CLASSES

# ----------------------------------------------------------------------------------------------------------------
# Cases and files.


@dataclass(frozen=True)
class _CaseRecord:
    case_id: str
    image: str
    label: str | None
    complete: str
    split: str
    annotated_slices: list[int] | None


def _sample_grid(rng: np.random.Generator, quick: bool) -> Grid:
    inplane = rng.uniform(*(INPLANE_QUICK_MM if quick else INPLANE_MM))
    lo, hi = SLICE_QUICK_MM if quick else SLICE_MM
    height = rng.uniform(*FOV_SI_MM)
    nx, ny = int(round(FOV_LR_MM / inplane)), int(round(FOV_AP_MM / inplane))
    thinnest = max(lo, height / max(1, MAX_VOXELS // (nx * ny)))
    thickness = rng.uniform(thinnest, hi)
    nz = int(round(height / thickness))
    spacing = (inplane, inplane, thickness)
    centre = (rng.uniform(-4.0, 4.0), rng.uniform(-4.0, 4.0), rng.uniform(0.0, 10.0))
    origin = [centre[d] - (n - 1) / 2.0 * spacing[d] for d, n in enumerate((nx, ny, nz))]
    return Grid(spacing, (nx, ny, nz), origin)


def _oriented(array: np.ndarray, grid: Grid, lps: bool) -> tuple[np.ndarray, np.ndarray]:
    """The array and affine as written: RAS as drawn, or LPS (voxel axes 0 and 1 reversed, same world geometry)."""
    affine = grid.ras_affine()
    if not lps:
        return array, affine
    flipped = np.ascontiguousarray(array[::-1, ::-1, :])
    lps_affine = affine.copy()
    for d in (0, 1):
        lps_affine[:3, 3] += affine[:3, d] * (grid.shape[d] - 1)
        lps_affine[:3, d] = -affine[:3, d]
    return flipped, lps_affine


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _source_label(labels: dict[int, LabelName], complete: np.ndarray, organs: np.ndarray) -> np.ndarray:
    """This source's label file from the complete label and the organ label (lesions read as their organ): its
    organ values, then its lesion values over those lesions; 0 for the classes it does not annotate."""
    lut = np.zeros(len(CLASSES) + 1, dtype=np.uint8)
    for value, meaning in labels.items():
        for name in (meaning if isinstance(meaning, tuple) else (meaning,)):
            if name in CLASSES:
                lut[CLASSES.index(name) + 1] = value
    label = lut[organs]
    for value, meaning in labels.items():
        if meaning in LESIONS:
            label[complete == ALL_CLASSES.index(meaning) + 1] = value
    return label


_MIN_ORGAN_MM3 = 300.0


def _make_case(out: Path, source: DemoSource, index: int, rng: np.random.Generator, quick: bool,
               lps: bool) -> _CaseRecord:
    case_id = f"{source.name}_{index:03d}"
    grid = _sample_grid(rng, quick)
    voxel_mm3 = float(np.prod(grid.spacing))
    for _attempt in range(8):
        phantom = rasterise(grid, rng, dict(source.lesion_share))
        counts = np.bincount(phantom.organ_label.ravel(), minlength=len(CLASSES) + 1)
        if (counts[1:] * voxel_mm3 >= _MIN_ORGAN_MM3).all():
            break
    else:  # pragma: no cover - the nominal anatomy keeps every organ well inside the field of view
        raise RuntimeError(f"demo case {case_id}: an organ fell outside the field of view")
    if source.modality == "CT":
        image = ct_image(phantom.tissue, rng)
    else:
        image = mr_image(phantom.tissue, grid, rng)
    image_rel = f"images/{case_id}_0000.nii.gz"
    complete_rel = f"labels_complete/{case_id}.nii.gz"
    array, affine = _oriented(image, grid, lps)
    _save_nifti(array, affine, out / image_rel)
    complete, _ = _oriented(phantom.label, grid, lps)
    organs, _ = _oriented(phantom.organ_label, grid, lps)
    _save_nifti(complete, affine, out / complete_rel)
    label_rel = None
    slices = None
    if source.labels is not None:
        label_rel = f"labels/{case_id}.nii.gz"
        label = _source_label(source.labels, complete, organs)
        if source.kind == "sparse":
            offset = int(rng.integers(0, SPARSE_STEP))
            slices = list(range(offset, grid.shape[2], SPARSE_STEP))
            keep = np.zeros(grid.shape[2], dtype=bool)
            keep[slices] = True
            label[:, :, ~keep] = 0
        _save_nifti(label, affine, out / label_rel)
    return _CaseRecord(case_id, image_rel, label_rel, complete_rel, source.split, slices)


def _labels_yaml(labels: dict[int, LabelName]) -> dict[int, str | list[str]]:
    return {int(v): (list(m) if isinstance(m, tuple) else m) for v, m in labels.items()}


def _manifest_doc(records: list[tuple[DemoSource, list[_CaseRecord]]], complete: bool,
                  classes: tuple[str, ...]) -> dict:
    sources = []
    for source, cases in records:
        kind = "full" if complete else source.kind
        entry: dict = {"name": source.name, "modality": source.modality, "kind": kind}
        labels = _label_values(classes) if complete else source.labels
        if labels is not None:
            entry["labels"] = _labels_yaml(labels)
        rows = []
        for case in cases:
            row: dict = {"id": case.case_id, "image": case.image}
            label = case.complete if complete else case.label
            if label is not None:
                row["label"] = label
            row["split"] = case.split
            if not complete and case.annotated_slices is not None:
                row["annotated_slices"] = {2: list(case.annotated_slices)}
            rows.append(row)
        entry["cases"] = rows
        sources.append(entry)
    return {"project": {"name": "unimos-demo", "classes": list(classes)}, "sources": sources}


class _ManifestDumper(yaml.SafeDumper):
    """Block style, lists of scalars inline, sequences indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: D102
        return super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (str, int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_ManifestDumper.add_representer(list, _represent_list)


def _dump_manifest(doc: dict, header: str) -> str:
    return header + yaml.dump(doc, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False, width=200)


def _readme(seed: int, quick: bool, records: list[tuple[DemoSource, list[_CaseRecord]]],
            classes: tuple[str, ...]) -> str:
    lines = [
        "# unimos demo collection (synthetic)",
        "",
        f"Written by `unimos.phantoms.make_demo_data(seed={seed}, quick={quick})`. Synthetic abdominal CT and MR",
        "volumes (not patient data) with deliberately mixed annotation, for trying unimos end to end:",
        "",
    ]
    for source, cases in records:
        what = "no labels" if source.labels is None else ", ".join(
            f"{v}: " + ("+".join(m) if isinstance(m, tuple) else m) for v, m in source.labels.items())
        note = {"sparse": f" (only every {SPARSE_STEP}th axial slice, listed per case; 0 elsewhere)",
                "partial": " (other classes are 0 in its label files but present in the images)"}.get(source.kind, "")
        if source.labels and any(isinstance(m, tuple) for m in source.labels.values()):
            note += "; both kidneys share one label value, split by body side"
        drawn = [f"{lesion} {share:.0%}" for lesion, share in source.lesion_share if share]
        if drawn:
            note += "; patients with lesions: " + ", ".join(drawn)
        lines.append(f"- `{source.name}`: {source.modality}, {source.kind}, {len(cases)} cases, "
                     f"split {source.split}; annotates {what}{note}")
    lines += [
        "",
        "- `manifest.yaml`: the collection as annotated (train on this).",
        f"- `manifest_complete.yaml`: the same images with complete {len(classes)}-class labels for every case (a",
        "  fully labeled upper bound).",
        "- `images/<case>_0000.nii.gz` (int16; CT in HU), `labels/<case>.nii.gz` (uint8, the source's own label",
        f"  values), `labels_complete/<case>.nii.gz` (uint8, 1..{len(classes)} = " + ", ".join(classes) + ").",
        "- About half the cases are stored RAS, half LPS (same world geometry); spacing varies per case.",
    ]
    if classes != CLASSES:
        lines += [
            "- Lesions (1-3 of 5-30 mm, hypo- or hyper-dense) grow in the liver, kidneys and pancreas of a share of",
            "  the patients of every source. A source whose labels do not name a lesion class labels those voxels",
            "  as the organ around it (organ-only datasets do the same).",
        ]
    return "\n".join([*lines, ""])


def _check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is not a folder", "choose a new or empty folder for the demo data")
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(out, "is not empty", "choose a new or empty folder for the demo data, or delete this one")


def make_demo_data(out: Path, seed: int = 0, quick: bool = False,
                   sources: tuple[DemoSource, ...] = SOURCES) -> Path:
    """Write the synthetic demo collection into `out` (new or empty) and return the path of its manifest.yaml.

    Deterministic for a given (seed, quick, sources). quick=True writes about half the cases at coarser spacing.
    `sources`: the collection's layout (SOURCES, the mixed annotations; SSL_SOURCES, the semi-supervised demo's).
    """
    out = Path(out)
    _check_output_folder(out)
    rng = np.random.default_rng(seed)
    records: list[tuple[DemoSource, list[_CaseRecord]]] = []
    for s_index, source in enumerate(sources):
        count = source.quick_count if quick else source.count
        cases = []
        for index in range(count):
            case_rng = np.random.default_rng(rng.integers(0, 2**63))
            lps = (index + s_index) % 2 == 1
            cases.append(_make_case(out, source, index, case_rng, quick, lps))
        records.append((source, cases))
    header = (f"# unimos demo collection (synthetic), written by make_demo_data(seed={seed}, quick={quick}).\n"
              "# Paths are relative to this file's folder.\n")
    classes = collection_classes(sources)
    write_text_atomic(out / "manifest_complete.yaml", _dump_manifest(
        _manifest_doc(records, complete=True, classes=classes),
        header + "# Every source as fully labeled (complete labels): an upper bound for comparison.\n"))
    write_text_atomic(out / "README.md", _readme(seed, quick, records, classes))
    return write_text_atomic(out / "manifest.yaml", _dump_manifest(
        _manifest_doc(records, complete=False, classes=classes), header))
