"""`unimos predict CHECKPOINT FOLDER` over a batch: a bad scan is reported at the end without stopping the others,
the exit code says whether any failed, and `--skip-existing` resumes a batch without redoing finished cases."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.reliability.helpers import (
    assert_one_clear_error,
    good_scan,
    invoke,
    leftovers,
    predict_log,
    resave,
    truncate,
)


def _nan_scan(path: Path) -> Path:
    scan = good_scan(path)
    data = np.asanyarray(nib.load(scan).dataobj).astype(np.float32)
    data[5, 5, 5] = np.nan
    return resave(scan, data)


BAD_SCANS = {"truncated": lambda path: truncate(good_scan(path)), "nan_voxels": _nan_scan}


@pytest.mark.parametrize("kind", list(BAD_SCANS))
def test_batch_goes_past_a_bad_scan_and_reports_it_at_the_end(checkpoint, tmp_path, kind):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    bad = BAD_SCANS[kind](scans / "a_bad.nii.gz")     # sorted first: the good scan comes after the failure
    good_scan(scans / "b_good.nii.gz")
    result = invoke("predict", checkpoint, scans, "--out", out)
    output = assert_one_clear_error(result, bad, "1 of 2 case(s) failed")
    assert result.exit_code == 1
    assert output.index("b_good: ") < output.index("1 of 2 case(s) failed")  # the report comes at the end
    assert (out / "b_good.nii.gz").exists() and not (out / "a_bad.nii.gz").exists() and not leftovers(out)
    log = predict_log(out)
    assert log["b_good"]["error"] is None and str(bad) in log["a_bad"]["error"]


def test_batch_of_good_scans_exits_zero(checkpoint, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    for i in range(2):
        good_scan(scans / f"case{i}.nii.gz", seed=i)
    result = invoke("predict", checkpoint, scans, "--out", out)
    assert result.exit_code == 0, result.output
    assert "failed" not in result.output and "error" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["case0.nii.gz", "case1.nii.gz", "labels.json",
                                                     "predict_log.json"]


def test_skip_existing_resumes_a_failed_batch_without_redoing_finished_cases(checkpoint, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    bad = truncate(good_scan(scans / "a_late.nii.gz"))
    good_scan(scans / "b_done.nii.gz")
    assert invoke("predict", checkpoint, scans, "--out", out).exit_code == 1
    done = out / "b_done.nii.gz"
    first_write = done.stat().st_mtime_ns
    good_scan(bad, seed=3)  # the user copies the scan again, completely this time

    result = invoke("predict", checkpoint, scans, "--out", out, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert done.stat().st_mtime_ns == first_write
    log = predict_log(out)
    assert log["b_done"]["stages"] == {"skipped": 1.0} and log["b_done"]["error"] is None
    assert log["a_late"]["error"] is None and "network" in log["a_late"]["stages"]
    assert (out / "a_late.nii.gz").exists() and not leftovers(out)


def test_with_overwrite_a_second_run_predicts_every_case_again(checkpoint, tmp_path):
    scans, out = tmp_path / "scans", tmp_path / "pred"
    good_scan(scans / "case.nii.gz")
    assert invoke("predict", checkpoint, scans, "--out", out).exit_code == 0
    result = invoke("predict", checkpoint, scans, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert "network" in predict_log(out)["case"]["stages"]


def test_predict_writes_a_slicer_segmentation_and_refuses_dicom_seg_for_a_nifti_input(checkpoint, tmp_path):
    import nrrd

    scan = good_scan(tmp_path / "in" / "scan.nii.gz")
    result = invoke("predict", checkpoint, scan, "--out", tmp_path / "pred", "--format", "seg-nrrd")
    assert result.exit_code == 0, result.output
    data, header = nrrd.read(str(tmp_path / "pred" / "scan.seg.nrrd"))
    assert data.shape == nib.load(scan).shape and header["Segment0_Name"] == "liver"
    refused = invoke("predict", checkpoint, scan, "--out", tmp_path / "pred2", "--format", "dicom-seg")
    assert_one_clear_error(refused, scan, "not a DICOM series folder", "--format nifti")
    assert not (tmp_path / "pred2" / "scan.dcm").exists()
