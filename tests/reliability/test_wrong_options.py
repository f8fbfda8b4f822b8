"""Wrong options and mismatched artefacts get one clear message when the command starts, not a wrong result.

Inputs covered: strategy options out of range, of the wrong type or several wrong at once; `evaluate
--tolerance-mm` that is not a positive distance; `preprocess --cache` naming a file; a checkpoint renamed or copied
as a pair, and one with half of its pair missing; predictions whose class indices differ from the manifest's
(matched by name through predict's labels.json, or refused when the model lacks a project class); missing
predictions (the fix names --allow-missing, which exists).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import write_tiny_manifest
from tests.reliability.helpers import assert_one_clear_error, files_under, good_scan, invoke


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_manifest(tmp_path_factory.mktemp("tiny"))


def train_with(manifest: Path, tmp_path: Path, *options: str):
    return invoke("train", manifest, "--plan", tmp_path / "plan.json", "--cache", tmp_path / "cache",
                  "--out", tmp_path / "run", "--iterations", "2", "--workers", "1", *options)


def plan_for(manifest: Path, tmp_path: Path) -> None:
    from tests.conftest import tiny_training_plan
    from unimos.data.manifest import load_manifest
    from unimos.preprocess.plan import save_plan

    save_plan(tiny_training_plan(load_manifest(manifest)), tmp_path / "plan.json")


@pytest.mark.parametrize(("strategy", "option", "phrase"), [
    ("unimatch", "tau=1.5", "a number in [0, 1], got 1.5"),
    ("unimatch", "tau=abc", "a number in [0, 1], got 'abc'"),
    ("cps", "weight=-0.1", "a number >= 0, got -0.1"),
    ("guided_cps", "class_weights=median", "one of none, distdw, got 'median'"),
    ("mean_teacher", "ema_decay=true", "a number in [0, 1], got True"),
    ("self_training", "rounds=1.5", "a whole number >= 1, got 1.5"),
    ("unimatch", "weak_flip=2", "one of auto, true, false, got 2"),
])
def test_out_of_range_strategy_option_is_refused_before_any_work(tiny, tmp_path, strategy, option, phrase):
    plan_for(tiny, tmp_path)
    result = train_with(tiny, tmp_path, "--strategy", strategy, "--strategy-option", option)
    assert_one_clear_error(result, f"--strategy-option {option.split('=')[0]}", phrase, "(the default)")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_several_wrong_strategy_options_are_listed_at_once(tiny, tmp_path):
    plan_for(tiny, tmp_path)
    result = train_with(tiny, tmp_path, "--strategy", "unimatch", "--strategy-option", "tau=2",
                        "--strategy-option", "feature_dropout=-1", "--strategy-option", "colour=red")
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in output
    assert "3 problem(s) found" in output
    for phrase in ("got 2", "got -1", "no option ['colour']"):
        assert phrase in output


def test_valid_strategy_options_keep_their_values():
    from unimos.strategies.base import check_strategy_options

    options = check_strategy_options("unimatch", {"tau": 1, "weak_flip": True})
    assert options["tau"] == 1 and options["weak_flip"] is True and options["feature_dropout"] == 0.5


@pytest.mark.parametrize("tolerance", ["-5", "0", "nan"])
def test_evaluate_refuses_a_tolerance_that_is_not_a_positive_distance(tiny, tmp_path, tolerance):
    (tmp_path / "pred").mkdir()
    result = invoke("evaluate", tmp_path / "pred", tiny, "--tolerance-mm", tolerance)
    assert_one_clear_error(result, "--tolerance-mm", "not a positive distance")
    assert files_under(tmp_path / "pred") == set()


def test_preprocess_refuses_a_cache_path_that_is_a_file(tiny, tmp_path):
    plan_for(tiny, tmp_path)
    cache = tmp_path / "cache.txt"
    cache.write_text("not a folder")
    result = invoke("preprocess", tiny, "--plan", tmp_path / "plan.json", "--cache", cache, "--workers", "1")
    assert_one_clear_error(result, cache, "is a file, not a folder", "--cache")
    assert cache.read_text() == "not a folder"


def test_a_checkpoint_pair_renamed_loads_by_its_new_name(checkpoint, tmp_path):
    from unimos.inference.model import load_model

    for suffix in (".json", ".safetensors"):
        shutil.copy(checkpoint.with_suffix(suffix), tmp_path / f"best{suffix}")
    checkpoint_final = checkpoint.with_suffix(".safetensors")
    moved = tmp_path / "elsewhere.safetensors"
    shutil.move(checkpoint_final, moved)  # the name stored inside no longer exists beside the copy's JSON
    try:
        model = load_model(tmp_path / "best")
        assert model.class_names == ["background", "liver"]
    finally:
        shutil.move(moved, checkpoint_final)


@pytest.mark.parametrize("kept", [".json", ".safetensors"])
def test_a_checkpoint_with_half_its_pair_missing_names_the_missing_file(checkpoint, tmp_path, kept):
    from safetensors.torch import load_file, save_file

    if kept == ".json":
        shutil.copy(checkpoint.with_suffix(".json"), tmp_path / "best.json")
        missing = tmp_path / "best.safetensors"
    else:  # weights without the metadata in their header (as another tool would save them)
        save_file(load_file(str(checkpoint.with_suffix(".safetensors"))), str(tmp_path / "best.safetensors"))
        missing = tmp_path / "best.json"
    scans = tmp_path / "scans"
    good_scan(scans / "a.nii.gz")
    result = invoke("predict", tmp_path / "best", scans, "--out", tmp_path / "pred")
    assert_one_clear_error(result, missing, "does not exist", "both files")


def _predictions_with_swapped_classes(tiny: Path, out: Path) -> Path:
    """The references of the tiny manifest as predictions whose label values swap liver (1) and spleen (2)."""
    from unimos.data.manifest import load_manifest

    out.mkdir()
    for case in load_manifest(tiny).cases:
        if case.label_path is None:
            continue
        label = nib.load(case.label_path)
        array = np.asarray(label.dataobj).astype(np.uint8)
        if case.source.name == "full":
            array = np.choose(array, [0, 2, 1]).astype(np.uint8)
        else:
            array = np.where(array == 1, 2, 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(array, label.affine), str(out / f"{case.case_id}.nii.gz"))
    return out


def evaluated_dsc(manifest: Path, predictions: Path) -> dict[str, float]:
    """`unimos evaluate PREDICTIONS MANIFEST --split all`: the mean DSC per structure."""
    result = invoke("evaluate", predictions, manifest, "--split", "all", "--no-report")
    assert result.exit_code == 0, result.output
    summary = json.loads((predictions / "evaluation" / "summary.json").read_text())
    return {name: entry["dsc"] for name, entry in summary["per_structure"].items()}


def test_evaluate_matches_classes_by_name_through_labels_json(tiny, tmp_path):
    predictions = _predictions_with_swapped_classes(tiny, tmp_path / "pred")
    (predictions / "labels.json").write_text(json.dumps({"0": "background", "1": "spleen", "2": "liver"}))
    assert evaluated_dsc(tiny, predictions) == {"liver": pytest.approx(1.0), "spleen": pytest.approx(1.0)}


def test_evaluate_without_labels_json_reads_values_as_project_indices(tiny, tmp_path):
    predictions = _predictions_with_swapped_classes(tiny, tmp_path / "pred")
    assert evaluated_dsc(tiny, predictions)["liver"] == pytest.approx(0.0)


def test_evaluate_scores_a_class_the_project_lacks_as_background(tiny, tmp_path):
    predictions = _predictions_with_swapped_classes(tiny, tmp_path / "pred")
    for path in predictions.glob("*.nii.gz"):  # a kidney the project does not know, in a background corner
        image = nib.load(path)
        array = np.asarray(image.dataobj).copy()
        assert not array[:2, :2, :2].any()
        array[:2, :2, :2] = 3
        nib.save(nib.Nifti1Image(array, image.affine), str(path))
    labels = {"0": "Background", "1": "Spleen", "2": "LIVER", "3": "kidney_left"}  # names match case-insensitively
    (predictions / "labels.json").write_text(json.dumps(labels))
    assert evaluated_dsc(tiny, predictions) == {"liver": pytest.approx(1.0), "spleen": pytest.approx(1.0)}


def test_evaluate_refuses_predictions_of_a_model_lacking_a_project_class(tiny, tmp_path):
    predictions = _predictions_with_swapped_classes(tiny, tmp_path / "pred")
    (predictions / "labels.json").write_text(json.dumps({"0": "background", "1": "liver"}))
    result = invoke("evaluate", predictions, tiny, "--split", "all", "--no-report")
    assert_one_clear_error(result, predictions / "labels.json", "lack the project's ['spleen']")
    assert not (predictions / "evaluation").exists()


def test_missing_predictions_offer_a_fix_that_exists(tiny, tmp_path):
    predictions = _predictions_with_swapped_classes(tiny, tmp_path / "pred")
    (predictions / "full_0.nii.gz").unlink()
    result = invoke("evaluate", predictions, tiny, "--split", "all", "--no-report")
    assert_one_clear_error(result, predictions.absolute(), "full_0", "--allow-missing", "--skip-existing")
    allowed = invoke("evaluate", predictions, tiny, "--split", "all", "--no-report", "--allow-missing")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads((predictions / "evaluation" / "summary.json").read_text())["missing"] == ["full_0"]


def test_allow_missing_with_no_prediction_at_all_is_still_refused(tiny, tmp_path):
    (tmp_path / "pred").mkdir()
    result = invoke("evaluate", tmp_path / "pred", tiny, "--split", "all", "--no-report", "--allow-missing")
    assert_one_clear_error(result, (tmp_path / "pred").absolute(), "holds no prediction")
    assert not (tmp_path / "pred" / "evaluation").exists()
