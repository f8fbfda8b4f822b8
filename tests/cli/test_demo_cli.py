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
    assert "Coverage" in result.output and "ct_abdomen_b" in result.output and "no problems found" in result.output


def test_broken_copy_lists_every_problem(demo_data, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(demo_data, copy)
    manifest = yaml.safe_load((copy / "manifest.yaml").read_text())
    by_name = {s["name"]: s for s in manifest["sources"]}
    missing = by_name["ct_full"]["cases"][0]
    (copy / missing["image"]).unlink()                                             # missing file
    shape_case = by_name["ct_abdomen_a"]["cases"][0]
    img = nib.load(copy / shape_case["image"])
    nib.save(nib.Nifti1Image(np.ones((9, 9, 9), np.uint8), img.affine), copy / shape_case["label"])  # shape mismatch
    value_case = by_name["ct_abdomen_b"]["cases"][0]
    lab = nib.load(copy / value_case["label"])
    data = np.asarray(lab.dataobj).copy()
    data[0, 0, 0] = 42
    nib.save(nib.Nifti1Image(data, lab.affine), copy / value_case["label"])        # undeclared label value
    nan_case = by_name["mr_partial"]["cases"][0]
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


def test_demo_quick_runs_to_the_cache_and_says_where_it_stops(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "run"), "--quick"])
    assert result.exit_code == 0, result.output
    assert "make data -> inspect -> plan -> preprocess" in result.output and "not built yet" in result.output
    assert (tmp_path / "run" / "plan_3mm.json").exists()
    assert any((tmp_path / "run" / "cache").rglob("image.npy"))


def test_demo_refuses_a_non_empty_out_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--quick"])
    assert result.exit_code == 1 and "not an empty folder" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"
