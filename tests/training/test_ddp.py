"""Multi-process training really synchronises gradients: 2 CPU ranks (gloo), each on its own half of the data,
end with the weights of one process trained on the union."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_training_plan
from unimos.data.manifest import load_manifest
from unimos.networks.checkpoint import load_tensors
from unimos.preprocess.cache import preprocess_manifest
from unimos.preprocess.plan import save_plan

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(args, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    if nproc == 1:
        command = [sys.executable, str(WORKER), *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   str(WORKER), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_rank_training_equals_one_process_on_the_union(tiny_manifest, tmp_path):
    manifest = load_manifest(tiny_manifest)
    plan = tiny_training_plan(manifest)
    plan_path = save_plan(plan, tmp_path / "plan.json")
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    # merged Dice averages per sample, so the mean over 2 ranks of 1 sample equals the mean over 1 rank of 2
    common = {"method": "merged_dice", "iterations": 3, "augment": False, "checkpoint_every": 0, "seed": 3,
              "learning_rate": 0.01, "device": "cpu", "optimizer": "sgd", "precision": "float32"}
    # SGD, not Adam: Adam divides by the root of tiny second moments, which magnifies float summation-order noise;
    # float32, not bfloat16 autocast: its rounding depends on how the batch is split, which is not what this pins
    _run([str(plan_path), str(tmp_path / "cache"), str(tmp_path / "ddp"), json.dumps({**common, "batch_size": 1})], 2)
    _run([str(plan_path), str(tmp_path / "cache"), str(tmp_path / "single"),
          json.dumps({**common, "batch_size": 2})], 1)
    ddp = load_tensors(tmp_path / "ddp" / "checkpoint_final")
    single = load_tensors(tmp_path / "single" / "checkpoint_final")
    weights = [k for k in single if k.startswith("model.")]
    assert weights and set(weights) == {k for k in ddp if k.startswith("model.")}
    for key in weights:
        assert torch.allclose(ddp[key], single[key], atol=1e-5, rtol=1e-4), key
    # the check can fail: one process on rank 0's half alone ends elsewhere
    _run([str(plan_path), str(tmp_path / "cache"), str(tmp_path / "half"), json.dumps({**common, "batch_size": 1})], 1)
    half = load_tensors(tmp_path / "half" / "checkpoint_final")
    assert any(not torch.allclose(half[k], single[k], atol=1e-5, rtol=1e-4) for k in weights)
