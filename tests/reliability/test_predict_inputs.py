"""`unimos predict` on a wrong input: a refusal or a warning, not a confident mask.

Kinds of input covered, one test each:
- a CT stored with a +1024 offset (air near 0): refused, naming its 1st percentile; with --force predicted, and the
  warning is in the case's record (predict_log.json);
- a DICOM series whose Modality tag is MR, given to a CT model: refused (needs ../shared/data);
- a blank (constant) volume, and one holding values of absurd magnitude: refused;
- real CTs and MRs (../shared/data) against a CT model trained in HU, a CT model trained on 8-bit btcv values and an
  MR model: each passes its own modality, fails the other, and a CT + 1024 fails;
- a one-slice scan for a 3D model: predicted, with a warning naming the thin axis and the model's patch;
- inputs that map to one output name (case.nii and case.nii.gz; x_0000 and x_0001 for a one-channel model):
  refused before any work, every group listed;
- a NIfTI whose header claims 4000^3 voxels in a file of about 1 KB (.nii.gz and .nii): refused before allocating;
  a volume whose allocation still fails: a clear error, not MemoryError;
- an output folder that holds this run's outputs already: refused unless --skip-existing or --overwrite;
- a predict that produces nothing: it leaves none of its own files (and touches none that were there).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import SHARED_DATA, model_plan
from tests.reliability.helpers import (
    assert_one_clear_error,
    files_under,
    good_scan,
    invoke,
    leftovers,
    predict_log,
    resave,
    truncate,
)
from unimos.data.plan_spec import ModelPlan, Plan


def _offset_scan(path: Path) -> Path:
    """good_scan with +1024 added: air at 24, the body at about 1064."""
    scan = good_scan(path)
    return resave(scan, np.asanyarray(nib.load(scan).dataobj).astype(np.int16) + 1024)


# ----------------------------------------------------------------------------------------------- intensities


def test_a_ct_with_a_1024_offset_is_refused_naming_its_first_percentile(checkpoint, tmp_path):
    scan = _offset_scan(tmp_path / "in" / "scan.nii.gz")
    result = invoke("predict", checkpoint, scan, "--out", tmp_path / "pred")
    assert_one_clear_error(result, scan, "1 of 1 case(s) failed", "its 1st percentile is 24",
                           "air near -1000", "subtract 1024", "--force")
    assert not (tmp_path / "pred" / "scan.nii.gz").exists()


def test_force_predicts_a_refused_scan_and_records_the_warning(checkpoint, tmp_path):
    scan = _offset_scan(tmp_path / "in" / "scan.nii.gz")
    out = tmp_path / "pred"
    result = invoke("predict", checkpoint, scan, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "scan.nii.gz").exists()
    record = predict_log(out)["scan"]
    assert record["error"] is None and len(record["warnings"]) == 1
    assert str(scan) in record["warnings"][0] and "its 1st percentile is 24" in record["warnings"][0]
    assert "predicted anyway because of --force" in record["warnings"][0]


def _series_as_mr(folder: Path) -> Path:
    """Three slices of the real CT series, their Modality tag set to MR."""
    import pydicom

    folder.mkdir(parents=True)
    for source in sorted((SHARED_DATA / "dicom_ct" / "series").iterdir())[:3]:
        dataset = pydicom.dcmread(source)
        dataset.Modality = "MR"
        dataset.save_as(folder / source.name)
    return folder


def test_a_dicom_series_tagged_mr_is_refused_by_a_ct_model(checkpoint, shared_data, tmp_path):
    series = _series_as_mr(tmp_path / "mr_series")
    result = invoke("predict", checkpoint, series, "--out", tmp_path / "pred")
    assert_one_clear_error(result, series, "its DICOM Modality tag is MR", "the model reads it as CT",
                           "use a model trained on MR")
    assert not (tmp_path / "pred").exists()


@pytest.mark.parametrize("kind, phrase", [("blank", "all its 5760 voxels have the value 0"),
                                          ("absurd", "holds values of absurd magnitude")])
def test_a_blank_or_absurd_volume_is_refused(checkpoint, tmp_path, kind, phrase):
    scan = good_scan(tmp_path / "in" / "scan.nii.gz")
    data = np.asanyarray(nib.load(scan).dataobj).astype(np.float32)
    if kind == "blank":
        data[:] = 0
    else:
        data[5, 5, 5] = 3e9  # a value no scanner writes: a wrong type or scaling in the header
    resave(scan, data)
    result = invoke("predict", checkpoint, scan, "--out", tmp_path / "pred")
    assert_one_clear_error(result, scan, "1 of 1 case(s) failed", phrase, "--force")


@pytest.fixture(scope="module")
def hu_plan() -> Plan:
    """The plan `unimos plan` makes for abdomen_pseudo (real CTs in HU, organs from -66 HU up)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repo in CI)")
    from unimos.data.manifest import load_manifest
    from unimos.preprocess.fingerprint import collect_fingerprint
    from unimos.preprocess.plan import make_plan

    manifest = load_manifest(SHARED_DATA / "abdomen_pseudo")
    return make_plan(collect_fingerprint(manifest, workers=1), manifest.taxonomy, "3mm")


# The btcv plan's window, as bench/input_sanity.py measured it: btcv/ stores 8-bit window values 0..255, not HU.
BTCV_PLAN = model_plan(normalisation={"CT": {"scheme": "ct_clip_zscore", "clip": [0.0, 255.0], "mean": 133.7,
                                            "std": 37.8}})
MR_PLAN = model_plan(normalisation={"MR": {"scheme": "zscore_per_volume"}})
REAL_SCANS = [("totalseg/example_ct_sm.nii.gz", "hu"), ("dicom_ct/series", "hu"),
              ("openkbp/imagesTr/okbp_001_0000.nii.gz", "hu"), ("btcv/imagesTr/BTCV_0005_0000.nii.gz", "btcv"),
              ("chaos_mr/imagesTr/CHAOST2_001_0000.nii.gz", "mr"),
              ("acdc/imagesTr/patient002_frame01_0000.nii.gz", "mr")]


@pytest.mark.parametrize("relative, kind", REAL_SCANS)
def test_real_scans_pass_their_own_modality_and_fail_the_other(hu_plan, relative, kind):
    from unimos.data.io import read_volume
    from unimos.inference.sanity import intensity_problem

    array = read_volume(SHARED_DATA / relative).array
    assert hu_plan.normalisation["CT"].clip[0] < 0  # trained in HU: the HU rules apply

    def passes(values: np.ndarray, modality: str, plan: ModelPlan) -> bool:
        return intensity_problem(values, modality, plan, relative) is None

    if kind == "mr":
        assert passes(array, "MR", MR_PLAN)
        assert not passes(array, "CT", hu_plan) and not passes(array, "CT", BTCV_PLAN)
        return
    own = hu_plan if kind == "hu" else BTCV_PLAN
    assert passes(array, "CT", own)
    assert not passes(array + np.float32(1024), "CT", own) and not passes(array + np.float32(1024), "CT", hu_plan)
    if kind == "hu":
        assert not passes(array, "MR", MR_PLAN)
    else:  # 8-bit values are not HU: an HU model refuses them (an MR model cannot tell, see inference/sanity.py)
        assert not passes(array, "CT", hu_plan)


# ----------------------------------------------------------------------------------------------- shape


def test_a_one_slice_scan_is_predicted_with_a_warning_naming_the_thin_axis(checkpoint, tmp_path):
    scan = good_scan(tmp_path / "in" / "slice.nii.gz", shape=(24, 20, 1))
    out = tmp_path / "pred"
    result = invoke("predict", checkpoint, scan, "--out", out)
    assert result.exit_code == 0, result.output
    warnings = predict_log(out)["slice"]["warnings"]
    assert len(warnings) == 1, warnings  # the in-plane axes (16 and 13 voxels at 3 mm) are wide enough
    assert "axis 2 has 1 voxel(s) on the model's 3 mm grid" in warnings[0]
    assert "the model's patch is 16 x 16 x 16" in warnings[0] and "unreliable" in warnings[0]
    assert (out / "slice.nii.gz").exists()


# ----------------------------------------------------------------------------------------------- names and files


def test_inputs_that_map_to_one_output_name_are_refused_listing_every_group(checkpoint, tmp_path):
    scans = tmp_path / "scans"
    good_scan(scans / "case.nii.gz")
    good_scan(scans / "case.nii", seed=1)
    good_scan(scans / "x_0000.nii.gz")
    good_scan(scans / "x_0001.nii.gz", seed=1)
    good_scan(scans / "other.nii.gz")
    out = tmp_path / "pred"
    result = invoke("predict", checkpoint, scans, "--out", out)
    assert_one_clear_error(result, scans, "4 inputs would be written to 2 output name(s)",
                           "case.nii and case.nii.gz -> case.nii.gz", "x_0000.nii.gz and x_0001.nii.gz -> x.nii.gz",
                           "the model takes one channel")
    assert not out.exists()  # refused before any work


@pytest.mark.parametrize("name", ["huge.nii.gz", "huge.nii"])
def test_a_header_claiming_a_huge_volume_in_a_tiny_file_is_refused_before_allocating(checkpoint, tmp_path, name):
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 4000))
    header.set_data_dtype(np.int16)
    header.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 700
    scan = tmp_path / "in" / name
    scan.parent.mkdir()
    scan.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    assert scan.stat().st_size < 1100
    result = invoke("predict", checkpoint, scan, "--out", tmp_path / "pred")
    assert_one_clear_error(result, scan, "its header describes 4000x4000x4000 voxels of int16 (119.2 GiB)",
                           "1032:1" if name.endswith(".gz") else "the file holds 700 bytes of voxels",
                           "copy or export the image again")


def test_a_volume_whose_allocation_fails_gives_a_clear_error_not_memory_error(tmp_path, monkeypatch):
    from unimos.data.io import read_volume
    from unimos.errors import ResourceError

    scan = good_scan(tmp_path / "scan.nii.gz")

    def out_of_memory(self, *args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", out_of_memory)  # the allocation of a real, too large scan
    with pytest.raises(ResourceError, match=r"reading its 24x20x12 voxels needs about 22.5 KiB of memory, and the "
                                            r"allocation failed"):
        read_volume(scan)


def test_existing_outputs_are_refused_unless_skipped_or_overwritten(checkpoint, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    good_scan(scans / "a.nii.gz")
    good_scan(scans / "b.nii.gz", seed=1)
    assert invoke("predict", checkpoint, scans / "a.nii.gz", "--out", out).exit_code == 0
    first = (out / "a.nii.gz").stat().st_mtime_ns
    refused = invoke("predict", checkpoint, scans, "--out", out)
    assert_one_clear_error(refused, out, "already holds 1 of the 2 output(s) this run would write (a.nii.gz)",
                           "--skip-existing", "--overwrite")
    assert (out / "a.nii.gz").stat().st_mtime_ns == first and not (out / "b.nii.gz").exists()
    both = invoke("predict", checkpoint, scans, "--out", out, "--skip-existing", "--overwrite")
    assert_one_clear_error(both, "--overwrite", "contradicts --skip-existing")

    replaced = invoke("predict", checkpoint, scans, "--out", out, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (out / "a.nii.gz").stat().st_mtime_ns != first and (out / "b.nii.gz").exists()
    assert all("network" in r["stages"] for r in predict_log(out).values())


def test_a_predict_that_produces_nothing_leaves_no_files_of_its_own(checkpoint, tmp_path):
    scan = truncate(good_scan(tmp_path / "in" / "scan.nii.gz"))
    fresh = tmp_path / "fresh" / "pred"
    result = invoke("predict", checkpoint, scan, "--out", fresh)
    assert_one_clear_error(result, scan, "1 of 1 case(s) failed", "truncated")
    assert not (tmp_path / "fresh").exists()  # the folders it created are gone too

    # A folder an earlier run wrote into: its files stay byte for byte, nothing is added.
    used = tmp_path / "used"
    good_scan(tmp_path / "earlier" / "old.nii.gz")
    assert invoke("predict", checkpoint, tmp_path / "earlier" / "old.nii.gz", "--out", used).exit_code == 0
    (used / "notes.txt").write_text("mine")
    before = {name: (used / name).read_bytes() for name in files_under(used)}
    assert set(before) == {"old.nii.gz", "labels.json", "predict_log.json", "notes.txt"}
    result = invoke("predict", checkpoint, scan, "--out", used)
    assert result.exit_code == 1
    assert {name: (used / name).read_bytes() for name in files_under(used)} == before and not leftovers(used)


def test_a_folder_of_another_models_predictions_is_refused_even_with_skip_existing(checkpoint, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    good_scan(scans / "a.nii.gz")
    out.mkdir()
    (out / "labels.json").write_text('{"0": "background", "1": "spleen", "2": "liver"}')
    for flags in ((), ("--skip-existing",), ("--overwrite",)):
        result = invoke("predict", checkpoint, scans, "--out", out, *flags)
        assert_one_clear_error(result, out, "names other classes than this model's", "another folder")
    assert files_under(out) == {"labels.json"}


def test_overwrite_removes_the_earlier_output_of_a_case_that_now_fails_and_keeps_the_log_of_the_others(
        checkpoint, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    for name in ("a", "b", "c"):
        good_scan(scans / f"{name}.nii.gz", seed=len(name))
    assert invoke("predict", checkpoint, scans, "--out", out).exit_code == 0
    (scans / "c.nii.gz").unlink()
    truncate(scans / "a.nii.gz")
    result = invoke("predict", checkpoint, scans, "--out", out, "--overwrite")
    assert result.exit_code == 1 and "1 of 2 case(s) failed" in " ".join(result.output.split())
    assert not (out / "a.nii.gz").exists()  # the earlier a must not pass for this run's
    log = predict_log(out)
    assert sorted(log) == ["a", "b", "c"]
    assert log["a"]["error"] and log["b"]["error"] is None and log["c"]["error"] is None
