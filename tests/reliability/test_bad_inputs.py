"""Bad inputs: each one gives ONE message naming the file, the problem and the fix, a non-zero exit, no traceback,
and leaves no file behind. Data problems go through `unimos inspect` (and `unimos preprocess`), scans through
`unimos predict`."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA, model_plan, tiny_training_plan
from tests.reliability.helpers import (
    assert_one_clear_error,
    copy_checkpoint,
    files_under,
    good_case,
    good_scan,
    invoke,
    invoke_with_permissions,
    leftovers,
    mixed_dicom_series,
    one_case_manifest,
    resave,
    truncate,
    unprivileged_workspace,
    unreadable,
    with_pixdim,
)
from unimos.data.manifest import Manifest, load_manifest
from unimos.errors import UnimosError

DICOM_SERIES = SHARED_DATA / "dicom_ct" / "series"


# ----------------------------------------------------------------------------------------------- data problems


def _truncated_image(folder: Path):
    image, label = good_case(folder)
    return one_case_manifest(folder, image, label), truncate(image)


def _text_named_nii_gz(folder: Path):
    image, label = good_case(folder)
    image.write_text("patient notes, not an image\n" * 20)
    return one_case_manifest(folder, image, label), image


def _shape_mismatch(folder: Path):
    image, label = good_case(folder)
    return one_case_manifest(folder, image, label), resave(label, np.ones((12, 10, 6), np.uint8))


def _affine_mismatch(folder: Path):
    image, label = good_case(folder)
    shifted = np.diag([2.0, 2.0, 3.0, 1.0])
    shifted[0, 3] = 1.0  # 1 mm off: far beyond the 0.01 mm tolerance
    return one_case_manifest(folder, image, label), resave(label, np.asanyarray(nib.load(label).dataobj), shifted)


def _undeclared_label_value(folder: Path):
    image, label = good_case(folder)
    data = np.asanyarray(nib.load(label).dataobj).copy()
    data[0, 0, 0] = 7
    return one_case_manifest(folder, image, label), resave(label, data)


def _nonfinite(value: float):
    def make(folder: Path):
        image, label = good_case(folder)
        data = np.asanyarray(nib.load(image).dataobj).astype(np.float32)
        data[3, 3, 3] = value
        return one_case_manifest(folder, image, label), resave(image, data)
    return make


def _two_d_image(folder: Path):
    image, label = good_case(folder)
    return one_case_manifest(folder, image, label), resave(image, np.zeros((24, 20), np.int16))


def _four_d_image(folder: Path):
    image, label = good_case(folder)
    return one_case_manifest(folder, image, label), resave(image, np.zeros((24, 20, 12, 2), np.int16))


def _empty_label(folder: Path):
    image, label = good_case(folder)
    return one_case_manifest(folder, image, label), resave(label, np.zeros((24, 20, 12), np.uint8))


def _unknown_label_name(folder: Path):
    image, label = good_case(folder)
    manifest = one_case_manifest(folder, image, label, labels={1: "livr"})
    return manifest, manifest


def _unknown_project_class(folder: Path):
    image, label = good_case(folder)
    manifest = one_case_manifest(folder, image, label, classes=["livr"])
    return manifest, manifest


def _missing_file(folder: Path):
    image, label = good_case(folder)
    manifest = one_case_manifest(folder, image, label)
    image.unlink()
    return manifest, image


def _duplicate_case_id(folder: Path):
    image, label = good_case(folder)
    other_image, other_label = good_case(folder, "b", seed=1)
    manifest = one_case_manifest(folder, image, label, extra_cases=[
        {"id": "a", "image": str(other_image.relative_to(folder)), "label": str(other_label.relative_to(folder))}])
    return manifest, manifest


def _pixdim(pixdim: tuple[float, float, float]):
    def make(folder: Path):
        image, label = good_case(folder)
        return one_case_manifest(folder, image, label), with_pixdim(image, pixdim)
    return make


def _implausible_spacing(folder: Path):
    image, label = good_case(folder)
    affine = np.diag([1e-4, 2.0, 3.0, 1.0])
    resave(label, np.asanyarray(nib.load(label).dataobj), affine)
    return one_case_manifest(folder, image, label), resave(image, np.asanyarray(nib.load(image).dataobj), affine)


def _fractional_float_label(folder: Path):
    image, label = good_case(folder)
    data = np.asanyarray(nib.load(label).dataobj).astype(np.float32)
    data[data == 1] = 0.5  # a probability map, not class ids
    return one_case_manifest(folder, image, label), resave(label, data)


def _singular_affine(folder: Path):
    image, label = good_case(folder)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 2] = affine[:3, 1]  # two voxel axes point the same way
    return one_case_manifest(folder, image, label), resave(image, np.asanyarray(nib.load(image).dataobj), affine)


def _wrong_types(folder: Path):
    image, label = good_case(folder)
    manifest = one_case_manifest(folder, image, label)
    payload = yaml.safe_load(manifest.read_text())
    payload["sources"][0]["labels"] = {"one": "liver"}
    payload["sources"][0]["cases"] = "a"
    manifest.write_text(yaml.safe_dump(payload))
    return manifest, manifest


# name -> (make the broken collection: (manifest, culprit file), phrases the one message must hold)
DATA_PROBLEMS = {
    "truncated_nii_gz": (_truncated_image, ["truncated", "copy or export it again"]),
    "text_named_nii_gz": (_text_named_nii_gz, ["is not a NIfTI image"]),
    "image_label_shape_mismatch": (_shape_mismatch, ["image and label geometry differ", "(12, 10, 6)"]),
    "image_label_affine_mismatch": (_affine_mismatch, ["image and label geometry differ", "origin [1.0, 0.0, 0.0]"]),
    "label_value_not_in_source_map": (_undeclared_label_value, ["label values [7]", "does not declare"]),
    "nan_voxels": (_nonfinite(np.nan), ["holds 1 NaN or infinite voxel(s)"]),
    "inf_voxels": (_nonfinite(-np.inf), ["holds 1 NaN or infinite voxel(s)"]),
    "two_d_image": (_two_d_image, ["2D image", "3D volume"]),
    "four_d_image": (_four_d_image, ["4D array", "one file per channel"]),
    "empty_label_of_annotated_case": (_empty_label, ["is empty (no voxel of any class)", "annotated"]),
    "unknown_label_name": (_unknown_label_name, ["'livr' matches no known structure", "did you mean 'liver'"]),
    "unknown_project_class": (_unknown_project_class, ["unknown class name 'livr'", "did you mean 'liver'"]),
    "missing_file": (_missing_file, ["does not exist"]),
    "duplicate_case_id": (_duplicate_case_id, ["case id 'a' appears in sources", "unique id"]),
    "zero_pixdim": (_pixdim((0.0, 2.0, 3.0)), ["voxel sizes (pixdim) of [0.0, 2.0, 3.0] mm"]),
    "negative_pixdim": (_pixdim((-2.0, 2.0, 3.0)), ["voxel sizes (pixdim) of [-2.0, 2.0, 3.0] mm"]),
    "implausible_spacing": (_implausible_spacing, ["implausible voxel spacing", "[0.05, 50.0] mm"]),
    "float_label_with_fractions": (_fractional_float_label, ["not whole numbers", "nearest-neighbour"]),
    "singular_affine": (_singular_affine, ["singular"]),
    "manifest_with_wrong_types": (_wrong_types, ["does not follow the schema", "sources.0.cases"]),
}


@pytest.mark.parametrize("name", list(DATA_PROBLEMS))
def test_inspect_gives_one_message_with_file_problem_and_fix(tmp_path, name):
    make, phrases = DATA_PROBLEMS[name]
    manifest, culprit = make(tmp_path)
    before = files_under(tmp_path)
    result = invoke("inspect", manifest)
    assert_one_clear_error(result, culprit, *phrases)
    assert files_under(tmp_path) == before


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    """A plan JSON for the tiny cases (preprocess needs one before it looks at the data)."""
    from unimos.preprocess.plan import save_plan

    root = tmp_path_factory.mktemp("plan")
    image, label = good_case(root)
    plan = tiny_training_plan(load_manifest(one_case_manifest(root, image, label)))
    return save_plan(plan, root / "plan.json")


@pytest.mark.parametrize("name", ["truncated_nii_gz", "image_label_shape_mismatch", "nan_voxels",
                                  "float_label_with_fractions", "zero_pixdim", "duplicate_case_id"])
def test_preprocess_refuses_bad_data_before_writing_the_cache(tmp_path, plan_file, name):
    make, phrases = DATA_PROBLEMS[name]
    manifest, culprit = make(tmp_path / "data")
    cache = tmp_path / "cache"
    result = invoke("preprocess", manifest, "--plan", plan_file, "--cache", cache, "--workers", "1")
    assert_one_clear_error(result, culprit, *phrases)
    assert files_under(cache) == set()


def test_preprocess_on_a_full_disk_leaves_no_half_case_in_the_cache(tmp_path, plan_file, monkeypatch):
    image, label = good_case(tmp_path / "data")
    manifest = one_case_manifest(tmp_path / "data", image, label)
    cache = tmp_path / "cache"

    def half_written_then_full(file, array, *args, **kwargs):
        Path(file).write_bytes(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", half_written_then_full)
    result = invoke("preprocess", manifest, "--plan", plan_file, "--cache", cache, "--workers", "1")
    assert_one_clear_error(result, cache, "No space left on device", "check free disk space")
    assert not leftovers(cache)
    assert not [p for p in files_under(cache) if p.endswith(".npy")]


def test_affine_difference_within_tolerance_is_accepted(tmp_path):
    image, label = good_case(tmp_path)
    nudged = np.diag([2.0, 2.0, 3.0, 1.0])
    nudged[0, 3] = 1e-3  # rounding noise of a converter, below the 0.01 mm tolerance
    resave(label, np.asanyarray(nib.load(label).dataobj), nudged)
    result = invoke("inspect", one_case_manifest(tmp_path, image, label))
    assert result.exit_code == 0, result.output


def test_inspect_refuses_a_dicom_folder_with_mixed_series(tmp_path):
    if not DICOM_SERIES.is_dir():
        pytest.skip(f"real DICOM series {DICOM_SERIES} is absent (it sits beside the repo in CI)")
    image, label = good_case(tmp_path)
    mixed = mixed_dicom_series(DICOM_SERIES, tmp_path / "images" / "mixed")
    manifest = one_case_manifest(tmp_path, mixed, label)
    before = files_under(tmp_path)
    result = invoke("inspect", manifest)
    assert_one_clear_error(result, mixed, "holds 2 DICOM series", "'venous copy'", "each series in its own folder")
    assert files_under(tmp_path) == before


def test_inspect_refuses_an_unreadable_file():
    with unprivileged_workspace() as folder:
        image, label = good_case(folder)
        manifest = one_case_manifest(folder, image, unreadable(label))
        before = files_under(folder)
        result = invoke_with_permissions("inspect", manifest)  # as root: run as an unprivileged user
        assert_one_clear_error(result, label, "permission denied", "chmod u+r")
        assert files_under(folder) == before


# ----------------------------------------------------------------------------------------------- manifest fuzzing

_NAMES = st.sampled_from(["liver", "spleen", "kidney", "right kidney", "tumor", "ignore", "background", "livr", "",
                          "colon", "liver_tumor", "abdominal"])
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
                    _NAMES, st.text(max_size=5))
_KEY = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), _NAMES, st.text(max_size=3))
_ANY = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(_KEY, inner, max_size=3)), max_leaves=8)


def _field(good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a value of the right type, sometimes anything at all: deep fields get reached and broken."""
    return st.integers(0, 9).flatmap(lambda i: _ANY if i == 0 else good)


_CASE = st.fixed_dictionaries(
    {"id": _field(st.sampled_from(["a", "b", ""])),
     "image": _field(st.one_of(st.sampled_from(["a.nii.gz", "/", ".", "~", ""]),
                               st.lists(st.just("a.nii.gz"), max_size=2)))},
    optional={"label": _field(st.sampled_from(["l.nii.gz", "", "."])),
              "split": _field(st.sampled_from(["train", "test", "validation", "val"])),
              "annotated_classes": _field(st.lists(_NAMES, max_size=3)),
              "annotated_slices": _field(st.dictionaries(
                  st.one_of(st.integers(-1, 3), _KEY), _field(st.lists(st.integers(-2, 5), max_size=3)), max_size=2))})
_SOURCE = st.fixed_dictionaries(
    {"name": _field(st.sampled_from(["s", "t", ""]))},
    optional={"modality": _field(st.sampled_from(["CT", "MR", "ct", "PET", ""])),
              "kind": _field(st.sampled_from(["full", "partial", "sparse", "unlabeled", "weird"])),
              "labels": _field(st.dictionaries(st.one_of(st.integers(-2, 5), _KEY),
                                               _field(st.one_of(_NAMES, st.lists(_NAMES, min_size=1, max_size=3))),
                                               max_size=4)),
              "annotated_classes": _field(st.lists(_NAMES, max_size=3)),
              "import": _field(st.sampled_from([".", "..", "missing", "/", "", "manifest.yaml"])),
              "cases": _field(st.lists(_CASE, max_size=3))})
_CLASS = st.one_of(_NAMES, st.fixed_dictionaries({"name": _field(_NAMES)},
                                                 optional={"parents": _field(st.lists(_NAMES, max_size=2))}))
_MANIFEST = st.fixed_dictionaries({}, optional={
    "project": _field(st.fixed_dictionaries({}, optional={
        "name": _field(st.text(max_size=4)),
        "classes": _field(st.one_of(st.just("abdominal"), st.lists(_CLASS, max_size=4)))})),
    "sources": _field(st.lists(_SOURCE, max_size=3))})


def _load_or_explain(path: Path) -> None:
    """load_manifest either succeeds or raises a UnimosError; anything else is a bug the user would see."""
    try:
        assert isinstance(load_manifest(path), Manifest)
    except UnimosError as err:
        assert err.problems and all(p.where and p.problem and p.fix for p in err.problems)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(payload=_MANIFEST)
def test_manifest_of_wrong_types_gives_only_validation_errors(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("fuzz") / "manifest.yaml"
    path.write_text(yaml.safe_dump(payload))
    _load_or_explain(path)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                     st.sampled_from([b"sources: [", b"- a\n- b", b"\xff\xfe", b"project: 3", b"sources: []",
                                      b"sources: !!python/object:os.system {}"])))
def test_manifest_of_garbage_bytes_gives_only_validation_errors(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("garbage") / "manifest.yaml"
    path.write_bytes(raw)
    _load_or_explain(path)


# ----------------------------------------------------------------------------------------------- scans to predict


def _scan_truncated(folder: Path) -> Path:
    return truncate(good_scan(folder / "scan.nii.gz"))


def _scan_text(folder: Path) -> Path:
    path = folder / "scan.nii.gz"
    path.write_text("patient notes, not an image\n" * 20)
    return path


def _scan_gzipped_text(folder: Path) -> Path:
    path = folder / "scan.nii.gz"
    path.write_bytes(gzip.compress(b"patient notes, not an image\n" * 40))
    return path


def _scan_array(array: np.ndarray, affine: np.ndarray | None = None):
    def make(folder: Path) -> Path:
        return resave(good_scan(folder / "scan.nii.gz"), array, affine)
    return make


def _scan_with_nonfinite(value: float):
    def make(folder: Path) -> Path:
        path = good_scan(folder / "scan.nii.gz")
        data = np.asanyarray(nib.load(path).dataobj).astype(np.float32)
        data[3, 3, 3] = value
        return resave(path, data)
    return make


def _scan_pixdim(pixdim: tuple[float, float, float]):
    def make(folder: Path) -> Path:
        return with_pixdim(good_scan(folder / "scan.nii.gz"), pixdim)
    return make


def _scan_spacing(spacing: tuple[float, float, float]):
    def make(folder: Path) -> Path:
        path = good_scan(folder / "scan.nii.gz")
        return resave(path, np.asanyarray(nib.load(path).dataobj), np.diag([*spacing, 1.0]))
    return make


_SINGULAR = np.diag([2.0, 2.0, 3.0, 1.0])
_SINGULAR[:3, 2] = _SINGULAR[:3, 1]

# name -> (make the scan, phrases the one message must hold)
SCAN_PROBLEMS = {
    "truncated_nii_gz": (_scan_truncated, ["truncated"]),
    "text_named_nii_gz": (_scan_text, ["is not a NIfTI image"]),
    "gzipped_text_named_nii_gz": (_scan_gzipped_text, ["not a readable NIfTI image"]),
    "nan_voxels": (_scan_with_nonfinite(np.nan), ["holds 1 NaN or infinite voxel(s)", "replace them"]),
    "inf_voxels": (_scan_with_nonfinite(np.inf), ["holds 1 NaN or infinite voxel(s)", "replace them"]),
    "two_d_image": (_scan_array(np.zeros((24, 20), np.int16)), ["2D image"]),
    "four_d_image": (_scan_array(np.zeros((24, 20, 12, 2), np.int16)), ["4D array"]),
    "zero_pixdim": (_scan_pixdim((0.0, 2.0, 3.0)), ["voxel sizes (pixdim) of [0.0, 2.0, 3.0] mm"]),
    "negative_pixdim": (_scan_pixdim((2.0, -2.0, 3.0)), ["voxel sizes (pixdim) of [2.0, -2.0, 3.0] mm"]),
    "tiny_spacing": (_scan_spacing((1e-4, 2.0, 3.0)), ["implausible voxel spacing"]),
    "huge_spacing": (_scan_spacing((1000.0, 2.0, 3.0)), ["implausible voxel spacing", "(1000.0, 2.0, 3.0)"]),
    "singular_affine": (_scan_array(np.zeros((24, 20, 12), np.int16), _SINGULAR), ["singular"]),
}


@pytest.mark.parametrize("name", list(SCAN_PROBLEMS))
def test_predict_reports_a_bad_scan_and_writes_no_label_map(checkpoint, tmp_path, name):
    make, phrases = SCAN_PROBLEMS[name]
    (tmp_path / "in").mkdir()
    scan = make(tmp_path / "in")
    out = tmp_path / "pred"
    result = invoke("predict", checkpoint, scan, "--out", out)
    assert_one_clear_error(result, scan, "1 of 1 case(s) failed", *phrases)
    assert not out.exists()  # a run that produced nothing leaves nothing: no label map, no log, no folder


def test_predict_refuses_a_missing_scan_before_creating_the_output_folder(checkpoint, tmp_path):
    out = tmp_path / "pred"
    result = invoke("predict", checkpoint, tmp_path / "in" / "scna.nii.gz", "--out", out)
    assert_one_clear_error(result, tmp_path / "in" / "scna.nii.gz", "does not exist")
    assert not out.exists()


def test_predict_refuses_a_dicom_folder_with_mixed_series(checkpoint, tmp_path):
    if not DICOM_SERIES.is_dir():
        pytest.skip(f"real DICOM series {DICOM_SERIES} is absent (it sits beside the repo in CI)")
    mixed = mixed_dicom_series(DICOM_SERIES, tmp_path / "mixed")
    out = tmp_path / "pred"
    result = invoke("predict", checkpoint, mixed, "--out", out)
    assert_one_clear_error(result, mixed, "holds 2 DICOM series", "each series in its own folder")
    assert not out.exists()


def test_predict_reports_an_unreadable_scan(checkpoint):
    with unprivileged_workspace() as folder:
        model = copy_checkpoint(checkpoint, folder)  # the module's copy lies where `nobody` cannot read it
        scan = unreadable(good_scan(folder / "in" / "scan.nii.gz"))
        result = invoke_with_permissions("predict", model, scan, "--out", folder / "pred")
        assert_one_clear_error(result, scan, "permission denied")
        assert not (folder / "pred" / "scan.nii.gz").exists() and not leftovers(folder / "pred")


def test_predict_into_a_read_only_location_says_so_and_writes_nothing(checkpoint):
    with unprivileged_workspace() as folder:
        model = copy_checkpoint(checkpoint, folder)
        scan = good_scan(folder / "in" / "scan.nii.gz")
        locked = folder / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            result = invoke_with_permissions("predict", model, scan, "--out", locked / "pred")
            assert_one_clear_error(result, locked / "pred", "cannot be created", "Permission denied")
            assert files_under(locked) == set()
        finally:
            locked.chmod(0o755)


@pytest.mark.parametrize("where", ["out_is_a_file", "out_below_a_file"])
def test_predict_into_a_path_blocked_by_a_file_says_so_and_writes_nothing(checkpoint, tmp_path, where):
    scan = good_scan(tmp_path / "in" / "scan.nii.gz")
    blocker = tmp_path / "results"
    blocker.write_text("my notes")
    out = blocker if where == "out_is_a_file" else blocker / "pred"
    result = invoke("predict", checkpoint, scan, "--out", out)
    assert_one_clear_error(result, out, "is a file")
    assert blocker.read_text() == "my notes" and sorted(p.name for p in tmp_path.iterdir()) == ["in", "results"]


def test_predict_on_a_full_disk_says_so_and_leaves_no_partial_file(checkpoint, tmp_path, monkeypatch):
    scan = good_scan(tmp_path / "in" / "scan.nii.gz")
    out = tmp_path / "pred"
    real_save = nib.save

    def half_written_then_full(img, filename):
        if str(filename).endswith(".nii.gz"):
            Path(filename).write_bytes(b"\x1f\x8b partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(img, filename)

    monkeypatch.setattr(nib, "save", half_written_then_full)
    result = invoke("predict", checkpoint, scan, "--out", out)
    assert_one_clear_error(result, out / "scan.nii.gz", "1 of 1 case(s) failed", "No space left on device",
                           "check free disk space")
    assert not (out / "scan.nii.gz").exists() and not leftovers(out)


# ----------------------------------------------------------------------------------------------- memory budget


def test_memory_estimate_counts_inputs_plan_grid_and_class_maps():
    from unimos.inference.predictor import estimate_memory_gib

    plan = model_plan(target_spacing_mm=[3.0, 3.0, 3.0])
    gib, plan_shape = estimate_memory_gib((10, 10, 10), np.diag([3.0, 3.0, 3.0, 1.0]), 1, plan, n_classes=2)
    # 1000 voxels on both grids: input + RAS copy 8000 B, three plan-grid copies 12000 B, sliding-window sum,
    # softmax and spare (3 x 2 classes) + count map 28000 B, int64 argmax 8000 B, three uint8 maps 3000 B.
    assert plan_shape == (10, 10, 10)
    assert gib * 2**30 == pytest.approx(59000)
    # An LPS scan at 1 x 1 x 3 mm: the plan grid is counted in RAS order, a third of the voxels in-plane each way.
    _, shape = estimate_memory_gib((30, 60, 10), np.diag([-1.0, -1.0, 3.0, 1.0]), 1, plan, n_classes=2)
    assert shape == (10, 20, 10)


def _nifti_header_only(path: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> Path:
    """A .nii.gz whose header announces `shape` but which holds almost no voxels (a large scan, cut short)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_sform(np.diag([*spacing, 1.0]), code=1)
    header.set_qform(np.diag([*spacing, 1.0]), code=1)
    header["vox_offset"] = 352
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1024))
    return path


def test_a_scan_too_large_for_the_memory_budget_is_refused_from_its_header(checkpoint, tmp_path):
    from unimos.inference.memory import current_rss_mib
    from unimos.inference.model import load_model
    from unimos.inference.predictor import PredictOptions, predict_files

    model = load_model(checkpoint)
    # The voxels are cut short: a refusal that names the budget, not the truncation, read the header alone.
    large = _nifti_header_only(tmp_path / "in" / "large.nii.gz", (512, 512, 900), (0.8, 0.8, 1.0))
    small = good_scan(tmp_path / "in" / "small.nii.gz")
    # what this test process already holds (it grows over a test session) plus 1 GiB: room for the small scan's
    # arrays, not for the large one's (about 4 GiB)
    budget = round(current_rss_mib() / 1024 + 1.0, 1)
    records = {r.case_id: r for r in predict_files(model, [large, small], tmp_path / "pred",
                                                   PredictOptions(memory_budget_gib=budget))}
    error = records["large"].error
    assert error is not None and str(large) in error and "Fix:" in error
    assert "estimated" in error and "GiB of memory" in error and f"memory budget of {budget:g} GiB" in error
    assert "GiB of arrays for input (512, 512, 900) voxels" in error and "truncated" not in error
    assert records["small"].error is None and (tmp_path / "pred" / "small.nii.gz").exists()
    assert not (tmp_path / "pred" / "large.nii.gz").exists() and not leftovers(tmp_path / "pred")


@pytest.mark.parametrize("budget_gib, refused", [(None, False), (64.0, False), (1e-4, True)])
def test_the_memory_budget_is_optional_and_compared_with_the_estimate(checkpoint, tmp_path, budget_gib, refused):
    from unimos.inference.model import load_model
    from unimos.inference.predictor import PredictOptions, predict_files

    scan = good_scan(tmp_path / "in" / "scan.nii.gz")  # 0.1 MiB of arrays, on top of the process's own memory
    records = predict_files(load_model(checkpoint), [scan], tmp_path / "pred",
                            PredictOptions(memory_budget_gib=budget_gib))
    assert (records[0].error is not None) == refused
    assert (tmp_path / "pred" / "scan.nii.gz").exists() != refused
    if refused:
        assert "memory budget of 0.0001 GiB" in records[0].error


def test_predict_cli_refuses_a_scan_over_its_memory_budget(checkpoint, tmp_path):
    scan = good_scan(tmp_path / "in" / "scan.nii.gz")  # the estimate includes torch and the model, well over 0.1 GiB
    result = invoke("predict", checkpoint, scan, "--out", tmp_path / "pred", "--memory-budget-gib", "0.1")
    assert_one_clear_error(result, scan, "memory budget of 0.1 GiB")
    assert not (tmp_path / "pred" / "scan.nii.gz").exists() and not leftovers(tmp_path / "pred")
