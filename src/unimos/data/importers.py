"""Importers: an nnU-Net v2 raw dataset folder or an MSD task folder becomes a source (or a whole manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unimos.data.io import IMAGE_EXTENSIONS
from unimos.data.manifest_spec import SPLITS, CaseSpec, ManifestSpec, ProjectSpec, SourceSpec
from unimos.data.taxonomy import Taxonomy, build_taxonomy
from unimos.errors import ManifestError


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(path, "does not exist",
                            "point at an nnU-Net v2 raw folder or an MSD task folder "
                            "(both hold dataset.json)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ManifestError(path, f"cannot be read as JSON ({err})", "fix or regenerate the file") from None


def folder_format(folder: Path) -> str:
    """'nnunet' or 'msd', from the folder's dataset.json; a ManifestError otherwise."""
    meta = _read_json(folder / "dataset.json")
    if isinstance(meta, dict) and "channel_names" in meta:
        return "nnunet"
    if isinstance(meta, dict) and "training" in meta and "modality" in meta:
        return "msd"
    raise ManifestError(folder / "dataset.json", "is neither an nnU-Net v2 nor an MSD dataset.json "
                        "(no 'channel_names', nor 'training' with 'modality')",
                        "give a manifest.yaml instead, or fix dataset.json")


def _label_names(folder: Path, meta: dict[str, Any], fmt: str) -> dict[int, str]:
    labels = meta.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ManifestError(folder / "dataset.json", "has no 'labels' mapping", "add the label names and values")
    out: dict[int, str] = {}
    for key, value in labels.items():
        name, number = (key, value) if fmt == "nnunet" else (value, key)
        if isinstance(number, list):
            raise ManifestError(folder / "dataset.json", f"label '{name}' is region-based ({number})",
                                "unimos needs one value per class; convert the labels to plain values")
        out[int(number)] = str(name)
    return out


def _modality(meta: dict[str, Any], fmt: str) -> str:
    channels = meta.get("channel_names" if fmt == "nnunet" else "modality") or {}
    first = str(channels.get("0", "CT")).upper()
    return "CT" if first in ("CT", "CT_RAW") else "MR"


def _strip_ending(name: str) -> str | None:
    for ending in IMAGE_EXTENSIONS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return None


def _nnunet_cases(folder: Path, images_dir: str, labels_dir: str | None, n_channels: int,
                  ending: str) -> list[tuple[str, list[str], str | None]]:
    images = folder / images_dir
    found: dict[str, list[str]] = {}
    for path in sorted(images.iterdir()) if images.is_dir() else []:
        stem = _strip_ending(path.name) if path.name.endswith(ending) else None
        if stem is None or path.name.startswith("._") or len(stem) < 6 or stem[-5] != "_":
            continue
        found.setdefault(stem[:-5], []).append(f"{images_dir}/{path.name}")
    cases = []
    for case_id, files in sorted(found.items()):
        if len(files) != n_channels:
            raise ManifestError(folder / images_dir / f"{case_id}_0000{ending}",
                                f"case '{case_id}' has {len(files)} channel file(s), "
                                f"dataset.json declares {n_channels}",
                                "add the missing _000N files or fix channel_names")
        label = f"{labels_dir}/{case_id}{ending}" if labels_dir else None
        if label and not (folder / label).exists():
            raise ManifestError(folder / label, f"label of case '{case_id}' is missing",
                                "add the label file, or move the image to imagesTs")
        cases.append((case_id, sorted(files), label))
    return cases


def _splits(folder: Path) -> dict[str, str]:
    """Case id -> split from a splits.json holding {"train": [...], "validation": [...], "test": [...]}."""
    path = folder / "splits.json"
    if not path.exists():
        return {}
    raw = _read_json(path)
    if not isinstance(raw, dict):
        return {}  # nnU-Net's own cross-validation folds (a list) say nothing about a held-out split
    return {case: split for split in SPLITS for case in raw.get(split, [])}


def _per_case_annotated(folder: Path) -> dict[str, list[str]]:
    path = folder / "cases.json"
    if not path.exists():
        return {}
    raw = _read_json(path)
    return {cid: list(v["annotated_classes"]) for cid, v in raw.items()
            if isinstance(v, dict) and "annotated_classes" in v}


def _source_from_nnunet(spec: SourceSpec, folder: Path, base: Path) -> SourceSpec:
    meta = _read_json(folder / "dataset.json")
    names = _label_names(folder, meta, "nnunet")
    ending = str(meta.get("file_ending", ".nii.gz"))
    n_channels = len(meta.get("channel_names", {"0": "CT"}))
    split_of = _splits(folder)
    annotated_of = _per_case_annotated(folder)
    prefix = _relative_prefix(folder, base)
    cases = [CaseSpec(id=cid, image=[prefix + f for f in files], label=prefix + label if label else None,
                      split=split_of.get(cid, "train"), annotated_classes=annotated_of.get(cid))
             for cid, files, label in _nnunet_cases(folder, "imagesTr", "labelsTr", n_channels, ending)]
    if not cases:
        raise ManifestError(folder / "imagesTr", f"holds no images named <case>_0000{ending}",
                            "check the folder follows the nnU-Net v2 raw layout")
    kind = spec.kind
    if kind is None and annotated_of:
        kind = "partial"
    if kind is None and any(n.lower() == "ignore" for n in names.values()):
        kind = "sparse"
    return spec.model_copy(update={
        "labels": spec.labels or names, "kind": kind, "cases": cases, "import_folder": None,
        "modality": spec.modality if "modality" in spec.model_fields_set else _modality(meta, "nnunet"),
    })


def _source_from_msd(spec: SourceSpec, folder: Path, base: Path) -> SourceSpec:
    meta = _read_json(folder / "dataset.json")
    names = _label_names(folder, meta, "msd")
    prefix = _relative_prefix(folder, base)
    cases = []
    for entry in meta["training"]:
        image = str(entry["image"]).removeprefix("./")
        label = str(entry["label"]).removeprefix("./")
        case_id = _strip_ending(Path(image).name) or Path(image).name
        cases.append(CaseSpec(id=case_id, image=prefix + image, label=prefix + label))
    return spec.model_copy(update={
        "labels": spec.labels or names, "cases": cases, "import_folder": None,
        "modality": spec.modality if "modality" in spec.model_fields_set else _modality(meta, "msd"),
    })


def _relative_prefix(folder: Path, base: Path) -> str:
    try:
        rel = folder.resolve().relative_to(base.resolve())
        return "" if str(rel) == "." else f"{rel.as_posix()}/"
    except ValueError:
        return f"{folder.resolve().as_posix()}/"


def import_source(spec: SourceSpec, base: Path) -> SourceSpec:
    """Fill a manifest source that says `import: FOLDER` with that folder's cases and label names."""
    folder = Path(spec.import_folder or "").expanduser()
    folder = folder if folder.is_absolute() else base / folder
    if not folder.is_dir():
        raise ManifestError(folder, f"the folder imported by source '{spec.name}' does not exist",
                            "fix the 'import' path (relative paths start at the manifest's folder)")
    if folder_format(folder) == "nnunet":
        return _source_from_nnunet(spec, folder, base)
    return _source_from_msd(spec, folder, base)


def folder_manifest_spec(folder: Path) -> tuple[ManifestSpec, Path, Taxonomy]:
    """A dataset folder given alone as a manifest (spec, the file its paths and errors refer to, taxonomy): one
    source, the project classes are its dataset.json labels. `manifest.load_manifest` resolves it."""
    folder = folder.expanduser().resolve()
    fmt = folder_format(folder)
    meta = _read_json(folder / "dataset.json")
    names = _label_names(folder, meta, fmt)
    classes = [n for v, n in sorted(names.items()) if v != 0 and n.lower() not in ("ignore", "background")]
    taxonomy = build_taxonomy(classes, allow_custom=True)
    project = ProjectSpec(name=str(meta.get("name") or folder.name), classes=list(taxonomy.names[1:]))
    name = folder.name.lower().replace(" ", "_")
    sources = [SourceSpec.model_validate({"name": name, "import": str(folder)})]
    spec = ManifestSpec(project=project, sources=sources)
    return spec, folder / "dataset.json", taxonomy
