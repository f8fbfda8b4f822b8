"""SIGKILL at the worst moments: inside an output write of `unimos predict`, and inside a checkpoint write of
`unimos train`. The kill lands deterministically through the atomic writer's test-only pause hook."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import tiny_training_plan, write_tiny_manifest
from unimos.data.manifest import load_manifest
from unimos.preprocess.plan import save_plan
from unimos.utils.atomic import PAUSE_HOOK, is_partial

TRAIN_ARGS = ["--iterations", "8", "--checkpoint-every", "2", "--log-every", "1", "--seed", "3", "--device", "cpu",
              "--workers", "1", "--learning-rate", "0.01"]


def _unimos(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "unimos.cli.main", *map(str, args)],
                            env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(args: list[str]) -> str:
    proc = _unimos(args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def _kill_when_paused(proc: subprocess.Popen, flag: Path, timeout: float = 240.0) -> None:
    """Wait until the writer signals its pause, then SIGKILL the process there."""
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"the process ended before pausing in the write: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the process never reached the paused write")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    data = root / "data"
    manifest_path = write_tiny_manifest(data)
    plan = tiny_training_plan(load_manifest(manifest_path))
    save_plan(plan, root / "plan.json")
    return root, manifest_path


def _losses(run: Path) -> dict[int, float]:
    with open(run / "log.csv") as handle:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle)}


def test_training_killed_inside_a_checkpoint_write_resumes_like_an_uninterrupted_run(project):
    root, manifest = project
    common = [manifest, "--plan", root / "plan.json", "--cache", root / "cache", *TRAIN_ARGS]
    _run(["train", *common, "--out", root / "whole"])
    flag = root / "paused_train"
    # pause when the JSON of the step-2 checkpoint is about to replace the old one: its weights are already renamed
    proc = _unimos(["train", *common, "--out", root / "killed"], {PAUSE_HOOK: f"{flag}:checkpoint_latest.json"})
    _kill_when_paused(proc, flag)
    _run(["train", *common, "--out", root / "killed", "--resume"])
    whole, resumed = _losses(root / "whole"), _losses(root / "killed")
    assert sorted(resumed) == sorted(whole) == list(range(1, 9))
    assert np.allclose([resumed[s] for s in range(3, 9)], [whole[s] for s in range(3, 9)], rtol=1e-4, atol=1e-5)


def test_predict_killed_inside_the_output_write_leaves_no_truncated_output(project):
    root, manifest = project
    if not (root / "whole" / "checkpoint_final.json").exists():
        _run(["train", manifest, "--plan", root / "plan.json", "--cache", root / "cache", *TRAIN_ARGS,
              "--out", root / "whole"])
    image = root / "data" / "images" / "full_0_0000.nii.gz"
    out = root / "pred"
    flag = root / "paused_predict"
    proc = _unimos(["predict", root / "whole" / "checkpoint_final", image, "--out", out],
                   {PAUSE_HOOK: f"{flag}:.nii.gz"})
    _kill_when_paused(proc, flag)
    assert not (out / "full_0.nii.gz").exists()
    leftovers = [p for p in out.iterdir() if is_partial(p)]
    assert leftovers, "the kill should have landed while the output was in its temporary file"
    for path in out.iterdir():
        if not is_partial(path) and path.suffix == ".json":
            json.loads(path.read_text())  # every visible file is whole
    _run(["predict", root / "whole" / "checkpoint_final", image, "--out", out])
    assert nib.load(out / "full_0.nii.gz").get_fdata().shape == nib.load(image).shape
    assert not [p for p in out.iterdir() if is_partial(p)], "the next run clears what the killed one left"


def test_an_output_folder_inside_the_input_folder_is_refused_unless_asked(project):
    root, _ = project
    if not (root / "whole" / "checkpoint_final.json").exists():
        pytest.skip("needs the checkpoint of the training test")
    images = root / "data" / "images"
    before = sorted(p.name for p in images.iterdir())
    proc = _unimos(["predict", root / "whole" / "checkpoint_final", images, "--out", images / "pred"])
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "inside the input folder" in output and "--allow-output-in-input" in output
    assert sorted(p.name for p in images.iterdir()) == before
