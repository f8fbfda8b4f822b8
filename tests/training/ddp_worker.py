"""Run by tests/training/test_ddp.py under torchrun: train from a prepared cache with the given settings."""

import json
import sys

import torch

from unimos.preprocess.cache import open_cache
from unimos.preprocess.plan import load_plan
from unimos.training.config import TrainConfig
from unimos.training.loop import train

if __name__ == "__main__":
    plan_path, cache_dir, run_dir, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    torch.set_num_threads(1)
    plan = load_plan(plan_path)
    cases = [c for c in open_cache(cache_dir, plan) if c.meta["has_label"]]
    train(cases, plan, TrainConfig(**settings), run_dir)
