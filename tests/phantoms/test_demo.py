"""The synthetic demo collection: determinism, files, manifests, annotation kinds, geometry, spacing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from scipy import ndimage

from unimos.errors import OutputError
from unimos.phantoms import ALL_CLASSES, CLASSES, LESIONS, collection, make_demo_data
from unimos.phantoms.anatomy import LESION_ORGANS
from unimos.utils.atomic import is_partial

EXPECTED = {  # name: (modality, kind)
    "lits_like": ("CT", "partial"),
    "kits_like": ("CT", "partial"),
    "msd_pancreas_like": ("CT", "partial"),
    "msd_spleen_like": ("CT", "partial"),
    "vessels_like": ("CT", "partial"),
    "btcv_like": ("CT", "partial"),
    "chaos_like_mr": ("MR", "partial"),
    "ct_sparse": ("CT", "sparse"),
    "ct_unlabeled": ("CT", "unlabeled"),
    "ct_test": ("CT", "full"),
}
COMPLETE = {i + 1: name for i, name in enumerate(ALL_CLASSES)}
ORGANS = {i + 1: name for i, name in enumerate(CLASSES)}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    out.mkdir()  # an existing empty folder is accepted
    manifest = make_demo_data(out, seed=0, quick=True)
    assert manifest == out / "manifest.yaml"
    return out


@pytest.fixture(scope="module")
def manifest(demo_dir: Path) -> dict:
    return yaml.safe_load((demo_dir / "manifest.yaml").read_text(encoding="utf-8"))


def _cases(manifest: dict):
    for source in manifest["sources"]:
        for case in source["cases"]:
            yield source, case


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine


def _arrays(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): np.asarray(nib.load(p).dataobj) for p in sorted(root.rglob("*.nii.gz"))}


def _world_centroid(label: np.ndarray, affine: np.ndarray, value: int) -> np.ndarray:
    ijk = np.argwhere(label == value).mean(axis=0)
    return (affine @ np.append(ijk, 1.0))[:3]


def test_same_seed_is_identical_and_other_seed_differs(demo_dir: Path, tmp_path: Path) -> None:
    make_demo_data(tmp_path / "again", seed=0, quick=True)
    first, again = _arrays(demo_dir), _arrays(tmp_path / "again")
    assert first.keys() == again.keys()
    for name, array in first.items():
        assert array.dtype == again[name].dtype, name
        assert np.array_equal(array, again[name]), name
        if "label" in name:
            assert array.tobytes() == again[name].tobytes(), name
    assert (demo_dir / "manifest.yaml").read_text() == (tmp_path / "again" / "manifest.yaml").read_text()

    make_demo_data(tmp_path / "other", seed=1, quick=True)
    other = _arrays(tmp_path / "other")
    for name in ("images/btcv_like_000_0000.nii.gz", "labels_complete/btcv_like_000.nii.gz",
                 "labels/lits_like_000.nii.gz"):
        a, b = first[name], other[name]
        assert a.shape != b.shape or not np.array_equal(a, b), name


def test_every_file_exists_and_loads(demo_dir: Path, manifest: dict) -> None:
    assert (demo_dir / "README.md").read_text().strip()
    assert not [p for p in demo_dir.rglob("*") if is_partial(p)]
    n_cases = 0
    for source, case in _cases(manifest):
        n_cases += 1
        image, affine = _load(demo_dir / case["image"])
        assert image.dtype == np.int16
        complete, complete_affine = _load(demo_dir / "labels_complete" / f"{case['id']}.nii.gz")
        assert complete.dtype == np.uint8 and complete.shape == image.shape
        assert np.allclose(complete_affine, affine)
        if source["kind"] == "unlabeled":
            assert "label" not in case
        else:
            label, label_affine = _load(demo_dir / case["label"])
            assert label.dtype == np.uint8 and label.shape == image.shape
            assert np.allclose(label_affine, affine)
        if source["modality"] == "CT":
            assert image.min() >= -1024 and image.max() > 300  # air and bone in HU
        else:
            assert image.min() >= 0 and 500 < np.percentile(image, 99) < 2500
    assert len(list((demo_dir / "images").glob("*.nii.gz"))) == n_cases
    assert len(list((demo_dir / "labels_complete").glob("*.nii.gz"))) == n_cases


def test_manifest_lists_the_sources_shaped_like_the_public_datasets(manifest: dict) -> None:
    assert manifest["project"]["classes"] == list(ALL_CLASSES)
    assert {s["name"]: (s["modality"], s["kind"]) for s in manifest["sources"]} == EXPECTED
    by_name = {s["name"]: s for s in manifest["sources"]}
    for name, source in by_name.items():
        assert len(source["cases"]) >= 1, name
        expected_split = "test" if name == "ct_test" else "train"
        assert all(c.get("split", "train") == expected_split for c in source["cases"]), name
    assert "labels" not in by_name["ct_unlabeled"]
    assert by_name["lits_like"]["labels"] == {1: "liver", 2: "liver_tumor"}
    assert by_name["kits_like"]["labels"] == {1: ["kidney_right", "kidney_left"], 2: "kidney_tumor"}
    assert by_name["msd_pancreas_like"]["labels"] == {1: "pancreas", 2: "pancreas_tumor"}
    assert by_name["msd_spleen_like"]["labels"] == {1: "spleen"}
    assert by_name["vessels_like"]["labels"] == {1: "aorta", 2: "inferior_vena_cava"}
    assert by_name["btcv_like"]["labels"] == ORGANS
    assert by_name["chaos_like_mr"]["labels"] == {63: "liver", 126: "kidney_right", 189: "kidney_left",
                                                  252: "spleen"}
    assert by_name["ct_test"]["labels"] == COMPLETE
    assert all(list(c["annotated_slices"]) == [2] for c in by_name["ct_sparse"]["cases"])


def test_default_collection_has_the_issue_counts() -> None:
    counts = {s.name: s.count for s in collection.SOURCES}
    assert counts["btcv_like"] == 2 and counts["ct_unlabeled"] >= 12 and counts["ct_test"] >= 3


def test_complete_manifest_is_fully_labeled(demo_dir: Path, manifest: dict) -> None:
    complete = yaml.safe_load((demo_dir / "manifest_complete.yaml").read_text(encoding="utf-8"))
    assert complete["project"] == manifest["project"]
    assert [s["name"] for s in complete["sources"]] == [s["name"] for s in manifest["sources"]]
    for source, original in zip(complete["sources"], manifest["sources"]):
        assert source["kind"] == "full" and source["labels"] == COMPLETE
        assert source["modality"] == original["modality"]
        for case, orig in zip(source["cases"], original["cases"], strict=True):
            assert (case["id"], case["image"], case["split"]) == (orig["id"], orig["image"], orig["split"])
            assert case["label"] == f"labels_complete/{case['id']}.nii.gz"
            assert "annotated_slices" not in case


def test_label_files_hold_their_sources_values_and_unnamed_lesions_as_their_organ(demo_dir: Path,
                                                                                    manifest: dict) -> None:
    for source, case in _cases(manifest):
        if source["kind"] == "unlabeled":
            continue
        label, _ = _load(demo_dir / case["label"])
        complete, _ = _load(demo_dir / "labels_complete" / f"{case['id']}.nii.gz")
        if source["kind"] == "sparse":
            rows = case["annotated_slices"][2]
            label, complete = label[:, :, rows], complete[:, :, rows]
        named = {n for m in source["labels"].values() for n in (m if isinstance(m, list) else [m])}
        assert set(np.unique(label).tolist()) <= set(source["labels"]) | {0}, case["id"]
        for value, meaning in source["labels"].items():
            names = meaning if isinstance(meaning, list) else [meaning]
            truth = np.isin(complete, [ALL_CLASSES.index(n) + 1 for n in names])
            if meaning in LESIONS:  # a named lesion: exactly its voxels
                assert np.array_equal(label == value, truth), (case["id"], value)
                continue
            # an organ: its voxels, and those of its lesions where the source does not name them
            unnamed = [ALL_CLASSES.index(lesion) + 1 for lesion, organs in LESION_ORGANS.items()
                       if lesion not in named and set(names) & set(organs)]
            assert not (truth & (label != value)).any(), (case["id"], value)
            assert not ((label == value) & ~truth & ~np.isin(complete, unnamed)).any(), (case["id"], value)
        for lesion, organs in LESION_ORGANS.items():  # an unnamed lesion of a named organ is never background
            if lesion not in named and set(organs) <= named:
                assert not (label[complete == ALL_CLASSES.index(lesion) + 1] == 0).any(), (case["id"], lesion)


def test_lesions_grow_inside_their_organs_with_the_drawn_sizes_and_stand_out_in_ct(demo_dir: Path,
                                                                                   manifest: dict) -> None:
    """Every test CT has every lesion class; each lesion touches its organ, is at most 30 mm across and its core
    differs from the organ around it by > 15 HU (a hypodense pancreas lesion is subtle: 35 HU nominal). That it
    grew inside the organ: tests/phantoms/test_lesions.py."""
    seen: dict[str, int] = dict.fromkeys(LESIONS, 0)
    for source, case in _cases(manifest):
        complete, affine = _load(demo_dir / "labels_complete" / f"{case['id']}.nii.gz")
        image, _ = _load(demo_dir / case["image"])
        spacing = np.abs(np.diag(affine[:3, :3]))
        if source["name"] == "ct_test":
            assert {ALL_CLASSES.index(n) + 1 for n in LESIONS} <= set(np.unique(complete).tolist()), case["id"]
        for lesion, organs in LESION_ORGANS.items():
            value = ALL_CLASSES.index(lesion) + 1
            components, n = ndimage.label(complete == value)
            seen[lesion] += n
            organ_values = [ALL_CLASSES.index(o) + 1 for o in organs]
            for k in range(1, n + 1):
                blob = components == k
                shell = ndimage.binary_dilation(blob) & ~blob
                around = complete[shell]
                assert np.isin(around, organ_values).any(), (case["id"], lesion, k)
                extent = (np.ptp(np.argwhere(blob), axis=0) + 1) * spacing
                assert extent.max() <= 30.0 + 2 * spacing.max(), (case["id"], lesion, extent)
                core = ndimage.binary_erosion(blob)
                if source["modality"] == "CT" and core.sum() >= 10:  # away from partial volume
                    organ = ndimage.binary_erosion(np.isin(complete, organ_values)) & ndimage.binary_dilation(
                        blob, iterations=4)
                    assert abs(float(np.median(image[core])) - float(np.median(image[organ]))) > 15, case["id"]
    assert all(seen.values()), seen


def test_sparse_labels_only_on_listed_slices(demo_dir: Path, manifest: dict) -> None:
    (sparse,) = [s for s in manifest["sources"] if s["kind"] == "sparse"]
    for case in sparse["cases"]:
        label, _ = _load(demo_dir / case["label"])
        rows = case["annotated_slices"][2]
        assert rows == list(range(rows[0], label.shape[2], 5)) and 0 <= rows[0] < 5
        off = np.ones(label.shape[2], dtype=bool)
        off[rows] = False
        assert not label[:, :, off].any()
        assert label[:, :, rows].any()


def test_every_organ_is_in_every_image(demo_dir: Path, manifest: dict) -> None:
    """Unannotated organs are still there: the complete label of every case (partial ones too) holds all 9."""
    for source, case in _cases(manifest):
        complete, affine = _load(demo_dir / "labels_complete" / f"{case['id']}.nii.gz")
        voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
        volumes = np.bincount(complete.ravel(), minlength=13)[1:10] * voxel_ml
        assert (volumes > 3.0).all(), (case["id"], dict(zip(CLASSES, volumes.round(1))))
        assert complete.max() <= 12


def test_organs_are_visible_in_ct(demo_dir: Path, manifest: dict) -> None:
    """Median HU inside each organ (away from its partial-volume border) is plausible and stands out from fat."""
    expected = {"liver": (40, 80), "spleen": (30, 70), "kidney_right": (90, 190), "kidney_left": (90, 190),
                "pancreas": (15, 65), "aorta": (150, 270), "inferior_vena_cava": (90, 170),
                "stomach": (-20, 60), "gallbladder": (-15, 35)}
    (btcv,) = [s for s in manifest["sources"] if s["name"] == "btcv_like"]
    for case in btcv["cases"]:
        image, _ = _load(demo_dir / case["image"])
        complete, _ = _load(demo_dir / "labels_complete" / f"{case['id']}.nii.gz")
        fat = float(np.median(image[(complete == 0) & (image > -200) & (image < -20)]))
        assert -130 < fat < -60, (case["id"], fat)
        for value, name in ORGANS.items():
            interior = ndimage.binary_erosion(complete == value, structure=np.ones((3, 3, 1), dtype=bool))
            typical = float(np.median(image[interior]))
            lo, hi = expected[name]
            assert lo <= typical <= hi, (case["id"], name, typical)
            assert typical - fat > 60, (case["id"], name, typical)  # stands out from intra-abdominal fat


def test_geometry_patient_right_is_world_plus_x(demo_dir: Path, manifest: dict) -> None:
    """RAS+ world x grows towards the patient's right: liver, right kidney and IVC have larger x (RAS and LPS)."""
    seen = set()
    for source, case in _cases(manifest):
        complete, affine = _load(demo_dir / "labels_complete" / f"{case['id']}.nii.gz")
        codes = "".join(nib.aff2axcodes(affine))
        assert codes in ("RAS", "LPS"), case["id"]
        seen.add(codes)
        c = {name: _world_centroid(complete, affine, value) for value, name in ORGANS.items()}
        assert c["liver"][0] > 20 > -20 > c["spleen"][0], case["id"]
        assert c["kidney_right"][0] > 10 > -10 > c["kidney_left"][0], case["id"]
        assert c["inferior_vena_cava"][0] > c["aorta"][0], case["id"]
        assert c["gallbladder"][0] > 0 and c["stomach"][0] < c["liver"][0], case["id"]
        assert c["pancreas"][1] > c["aorta"][1] > c["kidney_left"][1], case["id"]  # anterior to the aorta
        assert c["liver"][2] > c["kidney_right"][2], case["id"]  # liver above the right kidney
    assert seen == {"RAS", "LPS"}


def test_ras_and_lps_cases_keep_si_as_axis_2(demo_dir: Path, manifest: dict) -> None:
    for _, case in _cases(manifest):
        affine = nib.load(demo_dir / case["image"]).affine
        assert affine[2, 2] > 0 and np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))


def test_spacing_and_field_of_view(demo_dir: Path, manifest: dict) -> None:
    for _, case in _cases(manifest):
        img = nib.load(demo_dir / case["image"])
        sx, sy, sz = (float(z) for z in img.header.get_zooms())
        assert sx == pytest.approx(sy)
        assert 1.2 - 1e-4 <= sx <= 1.5 + 1e-4 and 3.0 - 1e-4 <= sz <= 5.0 + 1e-4, case["id"]
        nx, ny, nz = img.shape
        assert abs(nx * sx - 240) <= sx and abs(ny * sy - 180) <= sy and 150 - sz <= nz * sz <= 180 + sz


def test_default_spacing_ranges() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        grid = collection._sample_grid(rng, quick=False)
        inplane, _, thickness = grid.spacing
        assert 0.7 <= inplane <= 1.5 and 1.5 <= thickness <= 5.0
        assert np.prod(grid.shape) <= collection.MAX_VOXELS * 1.05


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        make_demo_data(tmp_path, seed=0, quick=True)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(OutputError):
        make_demo_data(tmp_path / "keep.txt", seed=0, quick=True)
