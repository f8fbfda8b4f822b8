"""A run stopped between checkpoints and resumed continues exactly like an uninterrupted run."""

import numpy as np
import pytest

from unimos.networks.checkpoint import load_tensors
from unimos.preprocess.plan import with_hashes
from unimos.training.config import TrainConfig
from unimos.training.loop import train


def test_resumed_run_repeats_the_uninterrupted_losses_and_weights(tiny_cache, tmp_path):
    cases, plan = tiny_cache
    config = TrainConfig(iterations=6, checkpoint_every=0, seed=4, device="cpu", learning_rate=0.01)
    whole = train(cases, plan, config, tmp_path / "whole")
    first = train(cases, plan, config, tmp_path / "parts", stop_after=3)
    assert len(first.losses) == 3
    second = train(cases, plan, config, tmp_path / "parts", resume=True)
    assert np.allclose(first.losses + second.losses, whole.losses, rtol=1e-5, atol=1e-6)
    a, b = load_tensors(whole.checkpoint), load_tensors(second.checkpoint)
    assert all(np.allclose(a[k].numpy(), b[k].numpy(), atol=1e-6) for k in a if k.startswith("model."))


def test_resume_refuses_a_checkpoint_of_another_plan(tiny_cache, tmp_path):
    from unimos.networks.checkpoint import CheckpointError

    cases, plan = tiny_cache
    config = TrainConfig(iterations=4, checkpoint_every=0, device="cpu")
    train(cases, plan, config, tmp_path / "run", stop_after=2)
    other = with_hashes(plan.model_copy(update={"target_spacing_mm": [2.0, 2.0, 2.0]}))
    with pytest.raises(CheckpointError, match="target_spacing_mm"):
        train(cases, other, config, tmp_path / "run", resume=True)
