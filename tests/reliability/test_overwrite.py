"""Nothing a user made is destroyed without asking, and a failed command leaves nothing of its own behind.

Inputs covered: `train --out` on a folder holding a trained run (without --resume, with --overwrite, with both);
`train --resume` asking for fewer iterations than the run has; a training that fails before its first checkpoint;
`plan --out` over a plan of another preset, over the same plan, over a file that is not a plan; `evaluate --out`
over an earlier evaluation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import tiny_training_plan, write_tiny_manifest
from tests.reliability.helpers import assert_one_clear_error, files_under, invoke

TRAIN = ("--iterations", "2", "--device", "cpu", "--workers", "1", "--checkpoint-every", "1")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    """The tiny manifest, a saved tiny plan, its cache and one trained 2-step run (copy it before changing it)."""
    from unimos.data.manifest import load_manifest
    from unimos.preprocess.plan import save_plan

    root = tmp_path_factory.mktemp("overwrite")
    manifest = write_tiny_manifest(root / "data")
    plan = save_plan(tiny_training_plan(load_manifest(manifest)), root / "plan.json")
    paths = {"manifest": manifest, "plan": plan, "cache": root / "cache", "run": root / "run", "root": root}
    result = train(paths, paths["run"])
    assert result.exit_code == 0, result.output
    return paths


def train(project: dict[str, Path], out: Path, *extra: str):
    return invoke("train", project["manifest"], "--plan", project["plan"], "--cache", project["cache"],
                  "--out", out, *TRAIN, *extra)


def copy_run(project: dict[str, Path], tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(project["run"], run)
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(files_under(folder))}


def test_train_refuses_a_folder_holding_a_trained_run_and_names_both_ways_on(project, tmp_path):
    run = copy_run(project, tmp_path)
    before = snapshot(run)
    result = train(project, run)
    output = assert_one_clear_error(result, run, "trained to step 2 of 2", "--resume", "--overwrite")
    assert "checkpoint_final" in output
    assert snapshot(run) == before


def test_train_overwrite_replaces_the_earlier_run_and_keeps_nothing_of_it(project, tmp_path):
    run = copy_run(project, tmp_path)
    (run / "round_1").mkdir()  # what a self-training run would have left
    result = train(project, run, "--overwrite", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["seed"] == 7
    assert not (run / "round_1").exists()


def test_train_refuses_resume_and_overwrite_together(project, tmp_path):
    run = copy_run(project, tmp_path)
    before = snapshot(run)
    assert_one_clear_error(train(project, run, "--resume", "--overwrite"), "--resume/--overwrite", "not both")
    assert snapshot(run) == before


def test_resume_with_fewer_iterations_than_the_run_has_is_refused_with_its_step_count(project, tmp_path):
    run = copy_run(project, tmp_path)
    before = snapshot(run)
    result = invoke("train", project["manifest"], "--plan", project["plan"], "--cache", project["cache"],
                    "--out", run, "--iterations", "1", "--device", "cpu", "--workers", "1", "--resume")
    assert_one_clear_error(result, run / "checkpoint_latest", "is at step 2", "--iterations 2 or more")
    assert "trained -1 steps" not in result.output
    assert snapshot(run) == before


def test_training_that_fails_at_its_first_step_leaves_no_files_behind(project, tmp_path, monkeypatch):
    from unimos.strategies.supervised import Supervised

    def broken_step(self, *args, **kwargs):
        raise MemoryError("not enough memory for the first batch")

    monkeypatch.setattr(Supervised, "step", broken_step)
    run = tmp_path / "run"
    with pytest.raises(MemoryError):
        from unimos.data.manifest import load_manifest
        from unimos.pipelines.run import train_from_cache
        from unimos.preprocess.cache import preprocess_manifest
        from unimos.preprocess.plan import load_plan
        from unimos.training.config import TrainConfig

        plan = load_plan(project["plan"])
        preprocess_manifest(load_manifest(project["manifest"]), plan, project["cache"], workers=1)
        train_from_cache(project["cache"], plan, TrainConfig(iterations=2, device="cpu"), run)
    assert not run.exists()


def test_training_that_fails_before_its_first_checkpoint_keeps_the_files_that_were_there(project, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    result = train(project, run, "--learning-rate", "1e30", "--checkpoint-every", "0", "--iterations", "20")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "the loss became" in result.output
    assert files_under(run) == {"notes.txt"}


def test_plan_refuses_to_replace_a_plan_of_another_preset_before_any_work(project, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(project["plan"].read_text())  # a 3mm plan
    before = plan.read_bytes()
    result = invoke("plan", project["manifest"], "--out", plan, "--preset", "coarse", "--workers", "1")
    assert_one_clear_error(result, plan, "preset '3mm', not 'coarse'", "--overwrite")
    assert plan.read_bytes() == before


def test_plan_refuses_to_replace_a_hand_edited_plan_and_rewrites_an_identical_one(project, tmp_path):
    plan = tmp_path / "plan.json"
    first = invoke("plan", project["manifest"], "--out", plan, "--workers", "1")
    assert first.exit_code == 0, first.output
    again = invoke("plan", project["manifest"], "--out", plan, "--workers", "1")
    assert again.exit_code == 0, again.output
    edited = json.loads(plan.read_text()) | {"batch_size": 4}
    plan.write_text(json.dumps(edited))
    assert_one_clear_error(invoke("plan", project["manifest"], "--out", plan, "--workers", "1"), plan,
                           "holds another plan", "--overwrite")
    assert json.loads(plan.read_text())["batch_size"] == 4
    replaced = invoke("plan", project["manifest"], "--out", plan, "--workers", "1", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(plan.read_text())["batch_size"] == 2


def test_plan_refuses_to_replace_a_file_that_is_not_a_plan(project, tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    assert_one_clear_error(invoke("plan", project["manifest"], "--out", notes, "--workers", "1"), notes,
                           "not a unimos plan")
    assert notes.read_text() == '{"mine": true}'


def test_evaluate_refuses_to_replace_an_earlier_evaluation(project, tmp_path):
    predictions = tmp_path / "pred"
    predicted = invoke("predict", project["run"] / "checkpoint_final", project["manifest"].parent / "images",
                       "--out", predictions)
    assert predicted.exit_code == 0, predicted.output
    first = invoke("evaluate", predictions, project["manifest"], "--split", "all", "--no-report")
    assert first.exit_code == 0, first.output
    scores = (predictions / "evaluation" / "scores.csv").read_bytes()
    assert_one_clear_error(invoke("evaluate", predictions, project["manifest"], "--split", "all", "--no-report"),
                           predictions / "evaluation", "scores.csv", "--overwrite")
    assert (predictions / "evaluation" / "scores.csv").read_bytes() == scores
    again = invoke("evaluate", predictions, project["manifest"], "--split", "all", "--no-report", "--overwrite")
    assert again.exit_code == 0, again.output


def test_an_overwrite_refused_by_a_wrong_setting_leaves_the_earlier_run_whole(project, tmp_path):
    run = copy_run(project, tmp_path)
    before = snapshot(run)
    for wrong in (("--device", "cuda:7"), ("--optimizer", "bogus"), ("--learning-rate", "-1")):
        result = train(project, run, "--overwrite", *wrong)
        assert result.exit_code == 1 and "Traceback" not in result.output and "unexpected" not in result.output
        assert wrong[0] in result.output
        assert snapshot(run) == before


def test_an_overwrite_whose_training_fails_before_a_checkpoint_puts_the_earlier_run_back(project, tmp_path,
                                                                                        monkeypatch):
    from unimos.errors import UnimosError
    from unimos.pipelines.run import train_from_cache
    from unimos.preprocess.plan import load_plan
    from unimos.strategies.supervised import Supervised
    from unimos.training.config import TrainConfig

    def broken_step(self, *args, **kwargs):
        raise UnimosError("step", "failed on purpose", "none")

    run = copy_run(project, tmp_path)
    before = snapshot(run)
    monkeypatch.setattr(Supervised, "step", broken_step)
    with pytest.raises(UnimosError, match="on purpose"):
        train_from_cache(project["cache"], load_plan(project["plan"]), TrainConfig(iterations=2, device="cpu"), run,
                         overwrite=True)
    assert snapshot(run) == before and not (run / ".replaced-run").exists()


def test_resume_in_a_folder_without_a_run_says_to_drop_resume(project, tmp_path):
    result = train(project, tmp_path / "empty_run", "--resume")
    assert_one_clear_error(result, tmp_path / "empty_run", "holds no run to resume", "drop --resume")
