"""The issue's acceptance path on the built-in data: make-demo-data, inspect, a broken copy, demo --quick."""

import shutil

import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from unimos.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    result = runner.invoke(app, ["make-demo-data", str(out), "--quick"])
    assert result.exit_code == 0, result.output
    return out


def test_demo_data_inspects_cleanly_with_coverage(demo_data):
    result = runner.invoke(app, ["inspect", str(demo_data / "manifest.yaml")])
    assert result.exit_code == 0, result.output
    assert "Coverage" in result.output and "kits_like" in result.output and "no problems found" in result.output


def test_broken_copy_lists_every_problem(demo_data, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(demo_data, copy)
    manifest = yaml.safe_load((copy / "manifest.yaml").read_text())
    by_name = {s["name"]: s for s in manifest["sources"]}
    missing = by_name["btcv_like"]["cases"][0]
    (copy / missing["image"]).unlink()                                             # missing file
    shape_case = by_name["lits_like"]["cases"][0]
    img = nib.load(copy / shape_case["image"])
    nib.save(nib.Nifti1Image(np.ones((9, 9, 9), np.uint8), img.affine), copy / shape_case["label"])  # shape mismatch
    value_case = by_name["kits_like"]["cases"][0]
    lab = nib.load(copy / value_case["label"])
    data = np.asarray(lab.dataobj).copy()
    data[0, 0, 0] = 42
    nib.save(nib.Nifti1Image(data, lab.affine), copy / value_case["label"])        # undeclared label value
    nan_case = by_name["chaos_like_mr"]["cases"][0]
    img = nib.load(copy / nan_case["image"])
    pixels = np.asarray(img.dataobj).astype(np.float32)
    pixels[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(pixels, img.affine), copy / nan_case["image"])        # NaN voxel
    result = runner.invoke(app, ["inspect", str(copy / "manifest.yaml")])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "4 problem(s)" in out
    assert missing["image"].split("/")[-1] in out and "does not exist" in out
    assert "image and label geometry differ" in out and shape_case["label"].split("/")[-1] in out
    assert "[42]" in out and "NaN" in out
    assert "Traceback" not in out


QUICK_FIXTURE_ITERATIONS = 12


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """`unimos demo --quick --progressive --lesion-stage` run once for the tests below: (out folder, CLI result).
    12 iterations instead of quick's 40 keep CI short: these tests pin the pipeline's outputs, not its scores."""
    out = tmp_path_factory.mktemp("quick") / "run"
    return out, runner.invoke(app, ["demo", "--out", str(out), "--quick", "--progressive", "--lesion-stage",
                                    "--iterations", str(QUICK_FIXTURE_ITERATIONS)])


def test_demo_quick_runs_end_to_end_and_writes_the_results_table(quick_demo):
    import json

    out, result = quick_demo
    assert result.exit_code == 0, result.output
    results = json.loads((out / "demo_results.json").read_text())
    organs = ["liver", "spleen", "kidney_right", "kidney_left", "pancreas", "aorta", "inferior_vena_cava",
              "stomach", "gallbladder"]
    lesions = ["liver_tumor", "kidney_tumor", "pancreas_tumor"]
    assert sorted(results) == ["naive", "partial", "partial+lesion_stage", "progressive", "upper_bound"]
    for method, rows in results.items():
        assert list(rows) == [*organs, "mean", *lesions, "lesion_mean"]
        for name in rows:
            assert set(rows[name]) == {"dsc", "nsd"}
            assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in rows[name].values())
        assert abs(rows["mean"]["dsc"] - sum(rows[o]["dsc"] for o in organs) / len(organs)) < 1e-9
        assert abs(rows["lesion_mean"]["dsc"] - sum(rows[o]["dsc"] for o in lesions) / len(lesions)) < 1e-9
    meta = json.loads((out / "demo_meta.json").read_text())
    assert meta["quick"] is True
    assert meta["iterations_per_method"] == meta["recipe"]["iterations"] == QUICK_FIXTURE_ITERATIONS
    assert meta["recipe"]["batch_size"] == 2 and meta["recipe"]["network"] == "dynunet"
    assert meta["precision"] in ("float32", "bfloat16") and meta["cpu"]
    # paper 002's focal CE + merged Dice in every row; the naive row reads unannotated classes as background
    methods = {row: json.loads((out / "runs" / row / "config.json").read_text())["method"]
               for row in ("partial", "naive", "upper_bound")}
    assert methods == {"partial": "partial_focal_dice", "naive": "naive_focal_dice",
                       "upper_bound": "partial_focal_dice"}
    assert "Held-out test set" in result.output and "mean (lesions)" in result.output
    stages = json.loads((out / "runs" / "progressive" / "progressive.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == [1, 2, 3]
    # the progressive row is scored with its own lesion stage (stage 3)
    logged = json.loads((out / "predictions" / "progressive" / "predict_log.json").read_text())
    assert logged and all(case["lesion_crops"] and "lesions" in case["stages"] for case in logged)
    html = (out / "report" / "index.html").read_text()
    assert "kidney_right" in html and "http://" not in html and "https://" not in html
    for method in results:  # the progressive pipeline's model is its organ + lesion stage
        run = out / "runs" / method / ("stage_2" if method == "progressive" else "")
        if method == "partial+lesion_stage":  # one network per lesion group, beside the partial row's organs
            groups = json.loads((run / "lesion_stage.json").read_text())["groups"]
            assert sorted(groups) == ["kidney_tumor", "liver_tumor", "pancreas_tumor"]
            assert all((run / g["checkpoint"]).with_suffix(".safetensors").exists() for g in groups.values())
        else:
            assert (run / "checkpoint_final.safetensors").exists()
        assert len(list((out / "predictions" / method).glob("*.nii.gz"))) == len(meta["test_cases"])


def test_the_demo_report_loads_in_a_real_browser_with_every_figure(quick_demo):
    from tests.report.browser import chromium, render

    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium package)")
    out, result = quick_demo
    assert result.exit_code == 0, result.output
    screenshot = out / "report" / "screenshot.png"  # kept beside the report, the CI artefact
    check = render(out / "report" / "index.html", screenshot, executable)
    assert check.images >= 3 + 2, check  # coverage, curves, results plot and one montage per test case
    assert not check.broken_images, check.broken_images
    assert not check.console_errors, check.console_errors
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_the_demo_recipe_is_the_same_on_every_machine_and_in_every_precision():
    """The iterations are fixed (bench/README.md, "The demo's recipe"): the demo's numbers must not depend on the CPU
    or on the precision `auto` picks there."""
    import inspect

    from unimos.pipelines.demo import demo_iterations

    assert demo_iterations(False) == 700 and demo_iterations(True) == 40
    assert list(inspect.signature(demo_iterations).parameters) == ["quick"]


def test_demo_progressive_with_ssl_is_refused_before_any_work(tmp_path):
    result = runner.invoke(app, ["demo", "--ssl", "--progressive", "--out", str(tmp_path / "d"), "--quick"])
    assert result.exit_code != 0 and "--progressive" in result.output
    assert not (tmp_path / "d").exists()


def test_demo_lesion_stage_with_ssl_is_refused_before_any_work(tmp_path):
    result = runner.invoke(app, ["demo", "--ssl", "--lesion-stage", "--out", str(tmp_path / "d"), "--quick"])
    assert result.exit_code != 0 and "--lesion-stage" in result.output
    assert not (tmp_path / "d").exists()


def test_demo_refuses_a_non_empty_out_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--quick"])
    assert result.exit_code == 1 and "not an empty folder" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_demo_ssl_all_quick_compares_every_strategy_and_the_ceiling_on_one_labeled_ct(tmp_path):
    import json

    from unimos.pipelines.demo import SSL_STRATEGIES

    out = tmp_path / "ssl"
    result = runner.invoke(app, ["demo", "--ssl", "--all", "--out", str(out), "--quick", "--iterations", "4"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "ssl_results.json").read_text())
    assert sorted(results) == sorted([*SSL_STRATEGIES, "all_labeled"])
    for rows in results.values():
        assert 0.0 <= rows["mean"]["dsc"] <= 1.0 and rows["seconds_per_iteration"] > 0
    meta = json.loads((out / "ssl_meta.json").read_text())
    assert meta["iterations_per_strategy"] == 4
    assert meta["labeled_cases"] == ["ct_labeled_000"]
    assert len(meta["unlabeled_cases"]) == 4 and all(c.startswith("ct_unlabeled") for c in meta["unlabeled_cases"])
    assert "s / iteration" in result.output
    # the ceiling trained on the complete labels of the unlabeled CTs: its run's cache is the complete-label one
    ceiling_config = json.loads((out / "runs" / "all_labeled" / "config.json").read_text())
    assert ceiling_config["strategy"] == "supervised" and (out / "cache_complete").is_dir()


def test_demo_all_without_ssl_is_refused_before_any_work(tmp_path):
    result = runner.invoke(app, ["demo", "--all", "--out", str(tmp_path / "d"), "--quick"])
    assert result.exit_code != 0 and "--all" in result.output and "--ssl" in result.output
    assert not (tmp_path / "d").exists()


def test_demo_ssl_default_rows_train_the_ceiling_on_the_complete_labels_and_the_others_on_the_demo_labels(
        tmp_path, monkeypatch):
    import unimos.pipelines.demo as demo

    calls = {}

    def fake_train_and_score(name, cache_dir, plan, manifest, config, out, *args, **kwargs):
        calls[name] = (cache_dir, config.strategy)
        organs = manifest.taxonomy.names[1:]
        return {"per_structure": {o: {"dsc": 0.5, "nsd": 0.5} for o in organs}}, 2.0

    monkeypatch.setattr(demo, "train_and_score", fake_train_and_score)
    result = demo.run_ssl_demo(tmp_path / "ssl", quick=True, iterations=4)
    assert list(calls) == list(demo.SSL_DEFAULT_ROWS) == ["supervised", "unimatch", "all_labeled"]
    assert calls["all_labeled"] == (tmp_path / "ssl" / "cache_complete", "supervised")
    assert calls["unimatch"] == (result.cache_dir, "unimatch") and calls["supervised"][0] == result.cache_dir
    assert result.cache_dir != tmp_path / "ssl" / "cache_complete"
    assert result.results["unimatch"]["seconds_per_iteration"] == 0.5  # 2 s over 4 iterations


def test_demo_row_config_trains_each_row_with_its_demo_loss_and_the_progressive_row_with_its_lesion_stage():
    from unimos.pipelines.demo import demo_row_config

    partial = demo_row_config("partial", 700, seed=3, quick=False)
    assert (partial.method, partial.strategy, partial.iterations, partial.seed) == (
        "partial_focal_dice", "supervised", 700, 3)
    assert partial.deep_supervision and partial.strategy_options == {}
    assert demo_row_config("naive", 700, seed=3, quick=False).method == "naive_focal_dice"
    progressive = demo_row_config("progressive", 40, seed=0, quick=True)
    assert (progressive.method, progressive.strategy) == ("partial_focal_dice", "progressive")
    assert progressive.strategy_options == {"lesion_iterations": 10}
    assert demo_row_config("progressive", 700, seed=0, quick=False).strategy_options == {"lesion_iterations": 300}
