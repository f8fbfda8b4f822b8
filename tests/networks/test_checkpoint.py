import json
import pickle

import pytest
import torch

from tests.conftest import model_plan
from unimos.data.plan_spec import ModelPlan
from unimos.networks.checkpoint import (
    CheckpointError,
    check_compatible,
    load_model_weights,
    load_tensors,
    read_checkpoint_meta,
    restore_optimizer,
    save_checkpoint,
)


def test_checkpoint_round_trip_restores_weights_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "ck", model, {"step": 7}, optimizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.safetensors"]
    other = torch.nn.Linear(4, 3)
    other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
    tensors = load_tensors(tmp_path / "ck")
    load_model_weights(other, tensors, tmp_path / "ck")
    restore_optimizer(other_opt, tensors, read_checkpoint_meta(tmp_path / "ck"))
    assert torch.equal(other.weight, model.weight)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert read_checkpoint_meta(tmp_path / "ck.json")["step"] == 7


class _Boom:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    evil = tmp_path / "model.pth"
    evil.write_bytes(pickle.dumps({"state_dict": _Boom()}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_tensors(evil)
    # the same bytes disguised as a unimos checkpoint are not unpickled either
    (tmp_path / "fake.json").write_text(json.dumps({"checkpoint_format": 1, "weights": "fake.safetensors"}))
    (tmp_path / "fake.safetensors").write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError, match="safetensors"):
        load_tensors(tmp_path / "fake")
    assert "code ran" not in capsys.readouterr().out


def _plan(**changes) -> ModelPlan:
    return model_plan(**{"classes": [{"name": "spleen", "parents": []}], "hash": "b", **changes})


def test_checkpoint_for_another_taxonomy_is_refused_naming_the_difference():
    meta = {"classes": [{"name": "liver", "parents": []}], "plan_hash": "a", "plan": {}}
    with pytest.raises(CheckpointError, match=r"\['liver'\] vs the plan's \['spleen'\]"):
        check_compatible(meta, _plan(), "ck")


def test_checkpoint_for_another_plan_names_the_model_fields_that_differ():
    kept = _plan(patch_size=[16, 16, 16], hash="a").model_record()
    meta = {"classes": kept["classes"], "plan_hash": "a", "plan": kept}
    with pytest.raises(CheckpointError, match=r"patch_size \[16, 16, 16\] vs \[8, 8, 8\]"):
        check_compatible(meta, _plan(), "ck")
    check_compatible({**meta, "plan_hash": "b"}, _plan(), "ck")  # the same plan: accepted
