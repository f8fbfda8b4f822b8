import csv
import json
import math

import numpy as np
import pytest

from tests.conftest import tiny_case, write_manifest, write_nifti
from unimos.data.manifest import load_manifest
from unimos.errors import InputError, UnimosError
from unimos.evaluation.evaluate import evaluate_predictions

SHAPE = (24, 20, 12)
SPACING = (2.0, 2.0, 3.0)
AFFINE = np.diag([*SPACING, 1.0])
LIVER_BOX = (slice(4, 10), slice(4, 10), slice(2, 8))  # 6 x 6 x 6 voxels
SPLEEN_BOX = (slice(14, 20), slice(4, 10), slice(2, 8))


def _labels(**boxes):
    label = np.zeros(SHAPE, dtype=np.uint8)
    for value, box in boxes.items():
        label[box] = int(value[1:])
    return label


def _project(tmp_path):
    """Test cases: full (liver 1, spleen 2), partial liver-only, sparse on slices 3 and 5; one train case."""
    both = {1: LIVER_BOX, 2: SPLEEN_BOX}
    full_img, full_lab = tiny_case(tmp_path, "full_0", labels=both, spacing=SPACING)
    part_img, part_lab = tiny_case(tmp_path, "part_0", labels={1: LIVER_BOX}, spacing=SPACING, seed=1)
    sparse_img, _ = tiny_case(tmp_path, "sparse_0", labels=both, spacing=SPACING, seed=2)
    sparse = np.zeros(SHAPE, dtype=np.uint8)
    sparse[LIVER_BOX] = 1
    sparse[SPLEEN_BOX] = 2
    sparse[:, :, [i for i in range(SHAPE[2]) if i not in (3, 5)]] = 0
    sparse_lab = write_nifti(tmp_path / "labels" / "sparse_0.nii.gz", sparse, AFFINE)
    train_img, train_lab = tiny_case(tmp_path, "train_0", labels=both, spacing=SPACING, seed=3)
    path = write_manifest(tmp_path, {
        "project": {"name": "tiny", "classes": ["liver", "spleen"]},
        "sources": [
            {"name": "full", "modality": "CT", "kind": "full", "labels": {1: "liver", 2: "spleen"}, "cases": [
                {"id": "full_0", "image": str(full_img), "label": str(full_lab), "split": "test"},
                {"id": "train_0", "image": str(train_img), "label": str(train_lab), "split": "train"}]},
            {"name": "liver_only", "modality": "CT", "kind": "partial", "labels": {1: "liver"}, "cases": [
                {"id": "part_0", "image": str(part_img), "label": str(part_lab), "split": "test"}]},
            {"name": "sparse", "modality": "MR", "kind": "sparse", "labels": {1: "liver", 2: "spleen"}, "cases": [
                {"id": "sparse_0", "image": str(sparse_img), "label": str(sparse_lab), "split": "test",
                 "annotated_slices": {2: [3, 5]}}]},
        ],
    })
    return load_manifest(path)


def _predict(pred_dir, case_id, label, affine=AFFINE):
    return write_nifti(pred_dir / f"{case_id}.nii.gz", label, affine)


@pytest.fixture
def project(tmp_path):
    manifest = _project(tmp_path)
    preds = tmp_path / "preds"
    _predict(preds, "full_0", _labels(v1=LIVER_BOX, v2=SPLEEN_BOX))
    # partial case: half the liver found (DSC 2*108/(108+216) = 2/3); a spleen it never annotated, far off
    half_liver = _labels(v1=(slice(4, 10), slice(4, 10), slice(2, 5)), v2=(slice(0, 3), slice(15, 20), slice(0, 12)))
    _predict(preds, "part_0", half_liver)
    # sparse case: right on slices 3 and 5, wrong everywhere else
    sparse = _labels(v1=LIVER_BOX, v2=SPLEEN_BOX)
    sparse[:, :, 4] = 0
    sparse[0:3, 15:20, 9:12] = 1
    _predict(preds, "sparse_0", sparse)
    return manifest, preds, tmp_path / "eval"


def _rows(result):
    return {(r.case_id, r.structure): r for r in result.records}


def test_partial_case_is_scored_only_on_its_annotated_classes(project):
    manifest, preds, out = project
    rows = _rows(evaluate_predictions(preds, manifest, out))
    assert set(rows) == {("full_0", "liver"), ("full_0", "spleen"), ("part_0", "liver"),
                         ("sparse_0", "liver"), ("sparse_0", "spleen")}
    assert rows["part_0", "liver"].dsc == pytest.approx(2 / 3)
    assert rows["full_0", "spleen"].dsc == 1.0 and rows["full_0", "spleen"].hd95 == 0.0


def test_sparse_case_is_scored_only_on_its_annotated_slices(project):
    manifest, preds, out = project
    rows = _rows(evaluate_predictions(preds, manifest, out))
    for structure in ("liver", "spleen"):
        row = rows["sparse_0", structure]
        assert (row.dsc, row.nsd, row.hd95, row.status) == (1.0, 1.0, 0.0, "scored")


def test_aggregates_are_means_over_the_cases_that_annotate_each_structure(project):
    manifest, preds, out = project
    result = evaluate_predictions(preds, manifest, out)
    liver, spleen = result.per_structure["liver"], result.per_structure["spleen"]
    assert (liver.n, spleen.n) == (3, 2)
    assert liver.dsc == pytest.approx((1 + 2 / 3 + 1) / 3) and liver.median_dsc == 1.0
    assert result.mean["dsc"] == pytest.approx((liver.dsc + 1.0) / 2)
    assert result.per_source["liver_only"].n == 1
    assert result.per_case["part_0"].dsc == pytest.approx(2 / 3)


def test_missing_prediction_is_reported_with_its_case_id(project):
    manifest, preds, out = project
    (preds / "part_0.nii.gz").unlink()
    with pytest.raises(UnimosError) as info:
        evaluate_predictions(preds, manifest, out)
    message = str(info.value)
    assert "part_0" in message and str(preds) in message and "Fix:" in message
    assert "train_0" not in message  # other splits are not asked for
    assert not out.exists()
    result = evaluate_predictions(preds, manifest, out, allow_missing=True)
    assert result.missing == ("part_0",)
    assert "part_0" not in result.per_case


def test_outputs_are_written_without_temporary_leftovers(project):
    manifest, preds, out = project
    evaluate_predictions(preds, manifest, out, tolerance_mm=1.5)
    assert sorted(p.name for p in out.iterdir()) == ["scores.csv", "summary.json", "summary.md"]
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["case_id", "source", "modality", "structure", "dsc", "nsd", "hd95", "status"]
    assert len(rows) == 5 and {r["modality"] for r in rows} == {"CT", "MR"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tolerance_mm"] == 1.5 and summary["split"] == "test"
    assert set(summary["per_structure"]["liver"]) >= {"dsc", "nsd", "hd95", "n"}
    assert set(summary) >= {"per_structure", "per_source", "per_case", "mean"}
    assert "| liver | 3 |" in (out / "summary.md").read_text()


def test_absent_structure_in_reference_and_prediction_is_not_scored(tmp_path):
    img, lab = tiny_case(tmp_path, "a", labels={1: LIVER_BOX}, spacing=SPACING)
    manifest = load_manifest(write_manifest(tmp_path, {"project": {"classes": ["liver", "spleen"]}, "sources": [
        {"name": "s", "kind": "full", "labels": {1: "liver", 2: "spleen"},
         "cases": [{"id": "a", "image": str(img), "label": str(lab), "split": "test"}]}]}))
    _predict(tmp_path / "preds", "a", _labels(v1=LIVER_BOX))
    result = evaluate_predictions(tmp_path / "preds", manifest, tmp_path / "eval")
    spleen = _rows(result)["a", "spleen"]
    assert spleen.status == "both_empty" and math.isnan(spleen.dsc)
    assert "spleen" not in result.per_structure and result.mean["dsc"] == 1.0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["per_case"]["a"]["n"] == 1


def test_parent_structure_is_scored_with_its_children(tmp_path):
    reference = _labels(v1=LIVER_BOX)
    reference[5:7, 5:7, 3:5] = 2  # a tumour inside the liver
    img, _ = tiny_case(tmp_path, "a", spacing=SPACING)
    lab = write_nifti(tmp_path / "labels" / "a.nii.gz", reference, AFFINE)
    manifest = load_manifest(write_manifest(tmp_path, {"project": {"classes": ["liver", "liver_tumor"]}, "sources": [
        {"name": "s", "kind": "full", "labels": {1: "liver", 2: "liver_tumor"},
         "cases": [{"id": "a", "image": str(img), "label": str(lab), "split": "test"}]}]}))
    _predict(tmp_path / "preds", "a", _labels(v1=LIVER_BOX))  # the whole liver, no tumour
    rows = _rows(evaluate_predictions(tmp_path / "preds", manifest, tmp_path / "eval"))
    assert rows["a", "liver"].dsc == 1.0
    assert rows["a", "liver_tumor"].status == "missed"


def test_prediction_on_another_grid_names_both_files(project):
    manifest, preds, out = project
    _predict(preds, "full_0", _labels(v1=LIVER_BOX), affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError) as info:
        evaluate_predictions(preds, manifest, out)
    message = str(info.value)
    assert str(preds / "full_0.nii.gz") in message
    assert str(manifest.cases_of("full")[0].label_path) in message
    assert "(2, 2, 3)" in message and "(1, 1, 1)" in message  # both voxel sizes


def test_prediction_with_values_outside_the_project_classes_is_refused(project):
    manifest, preds, out = project
    _predict(preds, "full_0", _labels(v7=LIVER_BOX))
    with pytest.raises(InputError, match=r"\[7\]"):
        evaluate_predictions(preds, manifest, out)


def test_reference_with_undeclared_labels_raises_the_input_error(project):
    manifest, preds, out = project
    reference = _labels(v1=LIVER_BOX, v2=SPLEEN_BOX)
    reference[0, 0, 0] = 9
    write_nifti(manifest.cases_of("full")[0].label_path, reference, AFFINE)
    with pytest.raises(InputError, match=r"\[9\]"):
        evaluate_predictions(preds, manifest, out)
