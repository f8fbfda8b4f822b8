"""Bad or unusual inputs to `unimos report`: a `unimos train` run folder (a report of its curves and settings), and
ONE clear error, no traceback and nothing written for an empty folder, a predictions folder of `unimos predict`
not evaluated yet, an evaluation folder whose scores.csv was deleted, a path that does not exist and a plain file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.reliability.helpers import assert_one_clear_error, files_under, invoke, train_tiny_checkpoint


class Outputs(NamedTuple):
    """What `unimos train` and `unimos predict` wrote for one tiny case, and the manifest of that case."""

    run: Path
    manifest: Path
    predictions: Path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Outputs:
    """One real 2-step train run and its prediction of the training case, shared by the tests (copied to change)."""
    root = tmp_path_factory.mktemp("outputs")
    checkpoint = train_tiny_checkpoint(root)
    predictions = root / "predictions"
    result = invoke("predict", checkpoint, root / "train" / "images", "--out", predictions)
    assert result.exit_code == 0, result.output
    return Outputs(checkpoint.parent, root / "train" / "manifest.yaml", predictions)


def _refused_without_writing(target: Path, *phrases: str) -> str:
    """`unimos report TARGET` fails with one clear message naming TARGET, and leaves its folder as it was."""
    folder = target if target.is_dir() else target.parent
    before = files_under(folder)
    result = invoke("report", target)
    output = assert_one_clear_error(result, target, *phrases)
    assert result.exit_code == 1
    assert files_under(folder) == before
    return output


def test_a_train_run_folder_gets_a_report_of_its_training_curves_and_settings(outputs, tmp_path):
    run = shutil.copytree(outputs.run, tmp_path / "run")
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    index = run / "report" / "index.html"
    html = index.read_text(encoding="utf-8")
    assert '<img src="figures/training.png"' in html
    assert (index.parent / "figures" / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<b>method</b>: partial" in html and "<b>iterations</b>: 2 of 2 (finished" in html
    assert "<th>patch (voxels)</th><td>16 × 16 × 16</td>" in html and "<th>target spacing (mm)</th>" in html
    assert 'id="results"' not in html and 'id="cases"' not in html  # no scores, so no results or case views


def test_an_empty_folder_is_refused_saying_what_a_report_needs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused_without_writing(empty, "is empty", "unimos evaluate", "unimos demo", "unimos train")


def test_a_predictions_folder_not_evaluated_yet_is_refused_pointing_at_unimos_evaluate(outputs):
    predictions = outputs.predictions
    _refused_without_writing(predictions, "holds predictions but no evaluation",
                             f"run `unimos evaluate {predictions} MANIFEST` first")


def test_an_evaluation_folder_without_scores_csv_is_refused_until_evaluate_runs_again(outputs, tmp_path):
    predictions = shutil.copytree(outputs.predictions, tmp_path / "predictions")
    evaluate = ("evaluate", predictions, outputs.manifest, "--split", "all", "--no-report")
    assert invoke(*evaluate).exit_code == 0
    evaluation = predictions / "evaluation"
    (evaluation / "scores.csv").unlink()
    _refused_without_writing(evaluation, "holds summary.json but no scores.csv",
                             f"run `unimos evaluate {predictions} MANIFEST --overwrite` again")
    assert invoke(*evaluate, "--overwrite").exit_code == 0  # the fix the message gives works
    result = invoke("report", evaluation)
    assert result.exit_code == 0, result.output
    assert (evaluation / "report" / "index.html").is_file()


def test_a_path_that_does_not_exist_is_refused(tmp_path):
    missing = tmp_path / "no_such_run"
    result = invoke("report", missing)
    assert_one_clear_error(result, missing, "does not exist", "check the path")
    assert not missing.exists()


@pytest.mark.parametrize("name", ["notes.txt", "scores.csv"])
def test_a_plain_file_is_refused_pointing_at_a_folder(tmp_path, name):
    file = tmp_path / name
    file.write_text("step,loss\n")
    output = _refused_without_writing(file, "is a file, not a folder")
    if name == "scores.csv":  # a file a report reads: the fix names the folder holding it
        assert f"unimos report {tmp_path}" in output


def test_a_report_replaces_its_own_earlier_report_but_not_a_folder_of_other_files(outputs, tmp_path):
    run = shutil.copytree(outputs.run, tmp_path / "run")
    assert invoke("report", run).exit_code == 0
    again = invoke("report", run)
    assert again.exit_code == 0, again.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<html>my own page</html>")
    result = invoke("report", run, "--out", mine)
    assert_one_clear_error(result, mine, "index.html (not a unimos report)", "new or empty folder")
    assert files_under(mine) == {"index.html"} and "my own page" in (mine / "index.html").read_text()
