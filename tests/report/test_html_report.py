"""The HTML report: a self-contained page from a demo-like run folder or a bare evaluation folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_case, write_manifest, write_nifti
from unimos.data.manifest import load_manifest
from unimos.evaluation.evaluate import evaluate_predictions
from unimos.report.case_views import canonical, render_case, view_aspect, view_plane
from unimos.report.html import write_report

SHAPE = (24, 20, 12)
AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])  # tiny_case's grid
LIVER = (slice(4, 10), slice(4, 10), slice(2, 8))
SPLEEN = (slice(14, 20), slice(4, 10), slice(2, 8))


def _shifted(box, voxels: int):
    return (slice(box[0].start + voxels, box[0].stop + voxels), box[1], box[2])


# Predictions per method and case: `partial` is perfect on full_test and 2 voxels off on part_test's liver, where
# it also predicts a spleen the partial reference does not annotate; `naive` is off on both.
PREDICTIONS = {
    "partial": {"full_test": {1: LIVER, 2: SPLEEN}, "part_test": {1: _shifted(LIVER, 2), 2: SPLEEN}},
    "naive": {"full_test": {1: _shifted(LIVER, 2), 2: SPLEEN}, "part_test": {1: _shifted(LIVER, 4)}},
}


def _case(data: Path, case_id: str, labels: dict, split: str, seed: int) -> dict:
    image, label = tiny_case(data, case_id, labels=labels, seed=seed)
    return {"id": case_id, "image": str(image.relative_to(data)), "label": str(label.relative_to(data)),
            "split": split}


def _write_prediction(path: Path, boxes: dict) -> None:
    array = np.zeros(SHAPE, dtype=np.uint8)
    for value, box in boxes.items():
        array[box] = value
    write_nifti(path, array, AFFINE)


def _write_log(path: Path, start_loss: float) -> None:
    rows = ["step,loss,lr,seconds,data_seconds,val_dice"]
    for step in range(10, 60, 10):
        val = f"{0.5 + step / 200:.4f}" if step % 20 == 0 else ""
        rows.append(f"{step},{start_loss / step * 10:.5f},0.001,0.3,0.01,{val}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """A demo-like folder: data/manifest.yaml (a full and a partial source), runs/, predictions/, evaluation/."""
    run = tmp_path_factory.mktemp("run")
    data = run / "data"
    full = [_case(data, "full_train", {1: LIVER, 2: SPLEEN}, "train", 0),
            _case(data, "full_test", {1: LIVER, 2: SPLEEN}, "test", 1)]
    part = [_case(data, "part_train", {1: LIVER}, "train", 2), _case(data, "part_test", {1: LIVER}, "test", 3)]
    manifest = load_manifest(write_manifest(data, {
        "project": {"name": "tiny", "classes": ["liver", "spleen"]},
        "sources": [{"name": "full", "modality": "CT", "kind": "full", "labels": {1: "liver", 2: "spleen"},
                     "cases": full},
                    {"name": "liver_only", "modality": "CT", "kind": "partial", "labels": {1: "liver"},
                     "cases": part}]}))
    for method, cases in PREDICTIONS.items():
        for case_id, boxes in cases.items():
            _write_prediction(run / "predictions" / method / f"{case_id}.nii.gz", boxes)
        evaluate_predictions(run / "predictions" / method, manifest, run / "evaluation" / method, split="test")
        _write_log(run / "runs" / method / "log.csv", 2.0 if method == "partial" else 3.0)
    (run / "demo_results.json").write_text(json.dumps({"partial": {}, "naive": {}}))  # the order the demo ran
    write_report(run)
    return run


def _html(run: Path) -> str:
    return (run / "report" / "index.html").read_text(encoding="utf-8")


def _between(text: str, start: str, end: str) -> str:
    begin = text.index(start)
    return text[begin:text.index(end, begin)]


def _assert_self_contained(index: Path) -> list[str]:
    html = index.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', html)
    for src in sources:
        assert not Path(src).is_absolute() and src.startswith("figures/") and src.endswith(".png")
        assert (index.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"https?://", html) is None
    assert "<script" not in html
    return sources


def test_report_of_a_demo_folder_is_self_contained_with_every_section(demo_run):
    sources = _assert_self_contained(demo_run / "report" / "index.html")
    assert {"figures/coverage.png", "figures/training.png", "figures/dsc_per_case.png"} <= set(sources)
    assert sum(src.startswith("figures/case_") for src in sources) == 2
    html = _html(demo_run)
    for section in ("data", "training", "results", "cases"):
        assert f'<section id="{section}">' in html
    assert "Not shown" not in html and "No case views" not in html


def test_per_organ_table_holds_the_summary_scores_of_every_method(demo_run):
    table = _between(_html(demo_run), '<table id="per-organ">', "</table>")
    assert table.index(">partial<") < table.index(">naive<")  # the demo's order, not alphabetical
    for method in ("partial", "naive"):
        summary = json.loads((demo_run / "evaluation" / method / "summary.json").read_text())
        for structure, scores in summary["per_structure"].items():
            assert f">{scores['dsc']:.3f}<" in table, (method, structure)
            assert f">{scores['nsd']:.3f}<" in table, (method, structure)
        assert f">{summary['mean']['dsc']:.3f}<" in table
    # hand-computed: partial's liver is perfect on full_test and 2 voxels off (4/6 overlap) on part_test
    assert ">0.833<" in table


def test_cases_are_listed_worst_first(demo_run):
    html = _html(demo_run)
    assert html.index('id="case-part_test"') < html.index('id="case-full_test"')
    assert "1. part_test: mean DSC 0.667 (partial)" in html


def test_unannotated_organ_of_a_partial_case_is_marked_not_annotated(demo_run):
    html = _html(demo_run)
    partial_case = _between(html, 'id="case-part_test"', "</article>")
    assert re.search(r"spleen</td><td class=\"na\"[^>]*>not annotated in the reference", partial_case)
    assert "Not annotated in the reference: spleen" in partial_case  # the figure's caption
    assert "not annotated" not in _between(html, 'id="case-full_test"', "</article>")


def test_case_view_draws_an_unannotated_prediction_without_a_reference(demo_run, tmp_path):
    manifest = load_manifest(demo_run / "data" / "manifest.yaml")
    case = next(c for c in manifest.cases if c.case_id == "part_test")
    shown = render_case(case, manifest.taxonomy, demo_run / "predictions" / "partial" / "part_test.nii.gz",
                        "partial", tmp_path / "part_test.png", {"liver": 0.667})
    assert shown.drawn == ("liver", "spleen")
    assert shown.not_annotated == ("spleen",)
    assert shown.absent == ()
    assert (tmp_path / "part_test.png").read_bytes()[:4] == b"\x89PNG"


def test_training_curves_and_table_come_from_the_logs(demo_run):
    table = _between(_html(demo_run), '<table id="training-table">', "</table>")
    assert "<td>partial</td><td>50</td>" in table
    assert "0.700 (iteration 40)" in table  # best of the logged validation Dice values


@pytest.mark.parametrize("affine", [AFFINE, np.diag([-2.0, 2.0, 3.0, 1.0])], ids=["RAS", "LAS"])
def test_views_follow_the_radiological_convention_whatever_the_file_orientation(affine):
    # A marker in the patient's most right, most anterior, most superior voxel.
    right = SHAPE[0] - 1 if affine[0, 0] > 0 else 0
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[right, SHAPE[1] - 1, SHAPE[2] - 1] = 1
    ras, spacing = canonical(array, affine)
    assert spacing == (2.0, 2.0, 3.0)
    marker = np.argwhere(ras)[0]
    for view, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        plane = view_plane(ras, view, int(marker[axis]))
        # axial: right on the image's left, anterior up; coronal: right left, superior up; sagittal: anterior
        # left, superior up: the marker is in the top-left corner of every view.
        assert tuple(np.argwhere(plane)[0]) == (0, 0), view
    assert view_aspect(spacing, "axial") == 1.0 and view_aspect(spacing, "coronal") == 1.5


def test_a_bare_evaluation_folder_gives_the_sections_it_can(demo_run, tmp_path):
    manifest = load_manifest(demo_run / "data" / "manifest.yaml")
    evaluation = tmp_path / "scores"
    evaluate_predictions(demo_run / "predictions" / "partial", manifest, evaluation, split="test")
    index = write_report(evaluation)
    assert index == evaluation / "report" / "index.html"
    sources = _assert_self_contained(index)
    assert sources == ["figures/dsc_per_case.png"]
    html = index.read_text(encoding="utf-8")
    assert '<table id="per-organ">' in html and '<table id="per-source">' in html
    assert "no training log was found" in html
    assert "No case views" in html and "does not exist" in html
    assert html.index('id="case-part_test"') < html.index('id="case-full_test"')  # scores per case still listed


def test_evaluation_inside_its_predictions_folder_draws_the_worst_cases_with_the_manifest_given(demo_run, tmp_path):
    predictions = tmp_path / "pred"
    for case_id, boxes in PREDICTIONS["naive"].items():
        _write_prediction(predictions / f"{case_id}.nii.gz", boxes)
    manifest_path = demo_run / "data" / "manifest.yaml"
    evaluate_predictions(predictions, load_manifest(manifest_path), predictions / "evaluation", split="test")
    index = write_report(predictions / "evaluation", manifest=manifest_path, max_cases=1)
    sources = _assert_self_contained(index)
    assert "figures/coverage.png" in sources
    assert [src for src in sources if src.startswith("figures/case_")] == ["figures/case_01_part_test.png"]
    html = index.read_text(encoding="utf-8")
    assert "prediction of pred dashed" in html  # the method takes the predictions folder's name
    assert "Showing the 1 worst of 2 cases" in html and 'id="case-full_test"' not in html


def test_a_run_folder_without_evaluation_gets_a_report_of_what_exists_and_what_is_missing(tmp_path):
    from tests.conftest import write_tiny_manifest
    from unimos.report.html import write_report

    run = tmp_path / "run"
    write_tiny_manifest(run / "data")
    (run / "runs" / "partial").mkdir(parents=True)
    (run / "runs" / "partial" / "log.csv").write_text(
        "step,loss,lr,seconds,data_seconds,val_dice\n1,2.0,0.003,0.3,0.01,\n2,1.5,0.003,0.3,0.01,\n")
    html = write_report(run).read_text()
    assert "No evaluation yet" in html and html.count("Missing:") == 2
    assert "figures/coverage.png" in html and "figures/training.png" in html
    assert (run / "report" / "figures" / "coverage.png").is_file()


def test_worst_case_of_every_modality_is_shown_within_the_case_limit():
    from unimos.report.results_html import shown_cases

    order = ["ct_a", "ct_b", "ct_c", "mr_a", "mr_b"]  # worst first
    modality = {"ct_a": "CT", "ct_b": "CT", "ct_c": "CT", "mr_a": "MR", "mr_b": "MR"}
    assert shown_cases(order, modality, 2) == ["ct_a", "mr_a"]
    assert shown_cases(order, modality, 3) == ["ct_a", "ct_b", "mr_a"]
    assert shown_cases(order, {c: "CT" for c in order}, 2) == ["ct_a", "ct_b"]
    assert shown_cases(order, modality, 0) == []


def test_a_ct_and_mr_evaluation_gets_one_organ_table_per_modality_and_an_mr_case_view(tmp_path):
    data = tmp_path / "run" / "data"
    ct = [_case(data, "ct_test", {1: LIVER, 2: SPLEEN}, "test", 0), _case(data, "ct_more", {1: LIVER}, "test", 2)]
    mr = [_case(data, "mr_test", {1: LIVER}, "test", 1)]
    manifest = load_manifest(write_manifest(data, {
        "project": {"name": "ct-mr", "classes": ["liver", "spleen"]},
        "sources": [{"name": "ct_src", "modality": "CT", "kind": "partial", "labels": {1: "liver", 2: "spleen"},
                     "cases": ct},
                    {"name": "mr_src", "modality": "MR", "kind": "partial", "labels": {1: "liver"}, "cases": mr}]}))
    run = tmp_path / "run"
    # the MR case is perfect, the CT cases' livers 2 voxels off: the two worst cases are CT
    _write_prediction(run / "predictions" / "partial" / "ct_test.nii.gz", {1: _shifted(LIVER, 2), 2: SPLEEN})
    _write_prediction(run / "predictions" / "partial" / "ct_more.nii.gz", {1: _shifted(LIVER, 2)})
    _write_prediction(run / "predictions" / "partial" / "mr_test.nii.gz", {1: LIVER})
    evaluate_predictions(run / "predictions" / "partial", manifest, run / "evaluation" / "partial", split="test")
    write_report(run, max_cases=2)
    html = _html(run)
    ct_table = _between(html, '<table id="per-organ-CT">', "</table>")
    mr_table = _between(html, '<table id="per-organ-MR">', "</table>")
    assert ">0.667<" in ct_table and ">1.000<" in ct_table  # livers 4/6 overlap, spleen exact
    assert ">1.000<" in mr_table and "spleen" not in mr_table  # MR annotates the liver only
    assert 'id="case-mr_test"' in html and 'id="case-ct_more"' in html  # two allowed: the worst CT and the MR
    assert 'id="case-ct_test"' not in html
