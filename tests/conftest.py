"""Shared test helpers: tiny real NIfTI files and manifests written into tmp_path, and the shared data folder."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from unimos.data.plan_spec import ModelPlan, Plan

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repo in CI)")
    return SHARED_DATA


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def tiny_case(folder: Path, case_id: str, *, shape=(24, 20, 12), spacing=(2.0, 2.0, 3.0),
              labels: dict[int, tuple[slice, slice, slice]] | None = None, seed: int = 0) -> tuple[Path, Path]:
    """A small CT-like image (body at 40 HU, air -1000) and a label map with boxes of the given values."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, -1000, dtype=np.int16)
    image[2:-2, 2:-2, :] = 40 + rng.integers(-5, 5, size=(shape[0] - 4, shape[1] - 4, shape[2]))
    label = np.zeros(shape, dtype=np.uint8)
    for value, box in (labels or {1: (slice(4, 10), slice(4, 10), slice(2, 8))}).items():
        label[box] = value
        image[box] = 60 + 20 * value
    affine = np.diag([*spacing, 1.0])
    return (write_nifti(folder / "images" / f"{case_id}_0000.nii.gz", image, affine),
            write_nifti(folder / "labels" / f"{case_id}.nii.gz", label, affine))


def write_manifest(folder: Path, payload: dict) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(payload, sort_keys=False))
    return path


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    """Two CT sources: a full one (liver=1, spleen=2) and a partial liver-only one; plus one unlabeled case."""
    return write_tiny_manifest(tmp_path)


def write_tiny_manifest(tmp_path: Path) -> Path:
    """The `tiny_manifest` files written into a folder (for fixtures of wider scope)."""
    boxes = {1: (slice(4, 10), slice(4, 10), slice(2, 8)), 2: (slice(14, 20), slice(4, 10), slice(2, 8))}
    cases_full, cases_part = [], []
    for i in range(2):
        img, lab = tiny_case(tmp_path, f"full_{i}", labels=boxes, seed=i)
        cases_full.append({"id": f"full_{i}", "image": str(img.relative_to(tmp_path)),
                           "label": str(lab.relative_to(tmp_path))})
        img, lab = tiny_case(tmp_path, f"part_{i}", labels={1: boxes[1]}, seed=10 + i)
        cases_part.append({"id": f"part_{i}", "image": str(img.relative_to(tmp_path)),
                           "label": str(lab.relative_to(tmp_path))})
    img, _ = tiny_case(tmp_path, "unl_0", seed=20)
    return write_manifest(tmp_path, {
        "project": {"name": "tiny", "classes": ["liver", "spleen"]},
        "sources": [
            {"name": "full", "modality": "CT", "kind": "full", "labels": {1: "liver", 2: "spleen"},
             "cases": cases_full},
            {"name": "liver_only", "modality": "CT", "kind": "partial", "labels": {1: "liver"}, "cases": cases_part},
            {"name": "unlabeled", "modality": "CT", "kind": "unlabeled",
             "cases": [{"id": "unl_0", "image": str(img.relative_to(tmp_path))}]},
        ],
    })


def model_plan(**fields) -> ModelPlan:
    """A small valid ModelPlan (what a checkpoint keeps of its plan: 3 mm, 8^3 patch, one class, MR z-score) with
    `fields` in place of those defaults, for tests that need only some of its fields."""
    defaults = {"target_spacing_mm": [3.0, 3.0, 3.0], "patch_size": [8, 8, 8], "network": {"name": "dynunet"},
                "normalisation": {"MR": {"scheme": "zscore_per_volume"}}, "classes": [{"name": "liver"}]}
    return ModelPlan.model_validate({**defaults, **fields})


def tiny_training_plan(manifest) -> Plan:
    """A 3 mm plan shrunk for tests: 8^3 patches and a 3-level DynUNet with 4-16 filters."""
    from unimos.preprocess.fingerprint import collect_fingerprint
    from unimos.preprocess.plan import make_plan, with_hashes

    plan = make_plan(collect_fingerprint(manifest), manifest.taxonomy, "3mm")
    network = {**plan.network, "kernel_size": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
               "filters": [4, 8, 16]}
    return with_hashes(plan.model_copy(update={"patch_size": [8, 8, 8], "network": network}))


@pytest.fixture
def tiny_cache(tiny_manifest, tmp_path):
    """The tiny manifest preprocessed with the tiny training plan: (cached cases, plan)."""
    from unimos.data.manifest import load_manifest
    from unimos.preprocess.cache import open_cache, preprocess_manifest

    manifest = load_manifest(tiny_manifest)
    plan = tiny_training_plan(manifest)
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    return open_cache(tmp_path / "cache", plan), plan
