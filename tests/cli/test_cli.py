import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import write_nifti
from unimos.cli.main import app

runner = CliRunner()


def test_help_of_every_command_gives_an_example():
    for command in ["make-demo-data", "inspect", "plan", "preprocess", "demo"]:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_inspect_prints_coverage_and_exits_zero(tiny_manifest):
    result = runner.invoke(app, ["inspect", str(tiny_manifest)])
    assert result.exit_code == 0, result.output
    assert "Coverage" in result.output and "liver_only" in result.output and "0/2" in result.output
    assert "no problems found" in result.output


def test_inspect_of_a_broken_manifest_lists_problems_without_traceback(tiny_manifest):
    payload = yaml.safe_load(tiny_manifest.read_text())
    payload["sources"][0]["cases"][0]["image"] = "images/gone_0000.nii.gz"
    label = np.full((24, 20, 12), 7, np.uint8)
    label[:5] = 1
    write_nifti(tiny_manifest.parent / payload["sources"][1]["cases"][0]["label"], label, np.diag([2.0, 2.0, 3.0, 1.0]))
    tiny_manifest.write_text(yaml.safe_dump(payload))
    before = sorted(p.name for p in tiny_manifest.parent.rglob("*"))
    result = runner.invoke(app, ["inspect", str(tiny_manifest)])
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output and "gone_0000.nii.gz" in result.output and "[7]" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tiny_manifest.parent.rglob("*")) == before


def test_plan_refuses_an_invalid_manifest_and_writes_nothing(tiny_manifest, tmp_path):
    payload = yaml.safe_load(tiny_manifest.read_text())
    payload["sources"][0]["cases"][0]["image"] = "images/gone_0000.nii.gz"
    tiny_manifest.write_text(yaml.safe_dump(payload))
    result = runner.invoke(app, ["plan", str(tiny_manifest), "--out", str(tmp_path / "work" / "plan.json")])
    assert result.exit_code == 1 and not (tmp_path / "work" / "plan.json").exists()


def test_plan_then_preprocess_twice_reuses_the_cache(tiny_manifest, tmp_path):
    plan = tmp_path / "work" / "plan.json"
    result = runner.invoke(app, ["plan", str(tiny_manifest), "--out", str(plan)])
    assert result.exit_code == 0, result.output
    assert json.loads(plan.read_text())["target_spacing_mm"] == [3.0, 3.0, 3.0]
    args = ["preprocess", str(tiny_manifest), "--plan", str(plan), "--cache", str(tmp_path / "cache"), "--workers", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and "preprocessed 5 case(s), 0 already cached" in first.output
    second = runner.invoke(app, args)
    assert "preprocessed 0 case(s), 5 already cached" in second.output


def test_unknown_class_is_one_readable_error(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"project": {"classes": ["liverr"]}, "sources": [{"name": "s"}]}))
    result = runner.invoke(app, ["inspect", str(manifest)])
    assert result.exit_code == 1 and "'liver'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("bad", ["missing.yaml", "folder"])
def test_missing_manifest_or_plain_folder_is_refused(tmp_path, bad):
    (tmp_path / "folder").mkdir()
    result = runner.invoke(app, ["inspect", str(tmp_path / bad)])
    assert result.exit_code == 1 and "Fix" in result.output


def test_train_predict_evaluate_through_the_cli(tiny_manifest, tmp_path):
    from tests.conftest import tiny_training_plan
    from unimos.data.manifest import load_manifest
    from unimos.preprocess.plan import save_plan

    plan = save_plan(tiny_training_plan(load_manifest(tiny_manifest)), tmp_path / "plan.json")
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(tiny_manifest), "--plan", str(plan), "--cache", str(tmp_path / "cache"),
                                  "--out", str(run), "--iterations", "2", "--device", "cpu", "--workers", "1"])
    assert trained.exit_code == 0, trained.output
    assert (run / "checkpoint_final.safetensors").exists() and (run / "log.csv").exists()
    predicted = runner.invoke(app, ["predict", str(run / "checkpoint_final"), str(tiny_manifest.parent / "images"),
                                    "--out", str(tmp_path / "pred")])
    assert predicted.exit_code == 0, predicted.output
    assert len(list((tmp_path / "pred").glob("*.nii.gz"))) == 5
    scored = runner.invoke(app, ["evaluate", str(tmp_path / "pred"), str(tiny_manifest), "--split", "all"])
    assert scored.exit_code == 0, scored.output
    assert (tmp_path / "pred" / "evaluation" / "scores.csv").exists()
    resumed = runner.invoke(app, ["train", str(tiny_manifest), "--plan", str(plan), "--cache", str(tmp_path / "cache"),
                                  "--out", str(tmp_path / "other"), "--iterations", "2", "--resume", "--workers", "1"])
    assert resumed.exit_code == 1 and "checkpoint_latest" in resumed.output and "Traceback" not in resumed.output


def test_predict_refuses_a_pickle_checkpoint(tmp_path):
    evil = tmp_path / "model.pth"
    evil.write_bytes(b"\x80\x04not really")
    result = runner.invoke(app, ["predict", str(evil), str(tmp_path)])
    assert result.exit_code == 1 and "pickle" in result.output


def test_strategy_options_parse_as_yaml_scalars_and_bad_ones_name_the_fix():
    from unimos.cli.console import parse_key_values
    from unimos.errors import UnimosError

    assert parse_key_values(["tau=0.9", "weak_flip=true", "rounds=2", "name=abc"]) == {
        "tau": 0.9, "weak_flip": True, "rounds": 2, "name": "abc"}
    with pytest.raises(UnimosError, match="KEY=VALUE"):
        parse_key_values(["tau"])


def test_a_bare_tumour_label_is_refused_naming_the_file_the_label_value_and_the_fix_verbatim(tmp_path):
    """The fix holds square brackets ({name: tumor, parent: [liver, ...]}): printed as written, not eaten as console
    markup; the message names the manifest, the source and the label value."""
    image = np.zeros((6, 6, 4), dtype=np.int16)
    write_nifti(tmp_path / "i.nii.gz", image)
    write_nifti(tmp_path / "l.nii.gz", image.astype(np.uint8))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump({"project": {"name": "x", "classes": ["spleen", "liver"]}, "sources": [
        {"name": "flare_like", "modality": "CT", "labels": {1: "spleen", 2: "Tumor"},
         "cases": [{"id": "c", "image": "i.nii.gz", "label": "l.nii.gz"}]}]}))
    result = runner.invoke(app, ["inspect", str(manifest)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in out
    assert "m.yaml (source 'flare_like'), label value 2" in out and "'Tumor'" in out
    assert "{name: tumor, parent: [liver, kidney_right, kidney_left, pancreas]}" in out


def test_bfloat16_on_a_cpu_that_would_emulate_it_is_warned_about_before_any_work(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    # --ssl with --progressive is refused after the precision checks: nothing is made
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--ssl", "--progressive",
                                 "--precision", "bfloat16", "--device", "cpu"])
    assert result.exit_code != 0
    assert "bfloat16 autocast is emulated" in result.output
    assert not (tmp_path / "demo").exists()
