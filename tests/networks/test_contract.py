"""The contract every registered network keeps; parametrised over NETWORKS.names(), so a new entry is tested here."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from unimos.networks import NETWORKS, build_network, full_resolution, network_config_for

# A tiny config per registered network (small filters, few levels). A new network adds its line here.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "dynunet": {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 3,
                "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "filters": [4, 8, 16]},
    "pipofan2d": {"name": "pipofan2d", "spatial_dims": 2, "filters": [4, 8, 16]},
}
TINY_SPATIAL = {2: (64, 64), 3: (32, 32, 32)}
IN_CHANNELS, NUM_CLASSES, BATCH = 2, 3, 2


def tiny_network(name: str, deep_supervision: bool = False, seed: int = 0) -> torch.nn.Module:
    assert name in TINY_CONFIGS, f"network '{name}' is registered but has no tiny config in {__file__}: add one"
    torch.manual_seed(seed)
    return build_network({**TINY_CONFIGS[name], "deep_supervision": deep_supervision}, IN_CHANNELS, NUM_CLASSES)


def tiny_input(network: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, IN_CHANNELS, *TINY_SPATIAL[network.spatial_dims], generator=generator)


def as_list(logits) -> list[torch.Tensor]:
    return logits if isinstance(logits, list) else [logits]


names = pytest.mark.parametrize("name", NETWORKS.names())
with_and_without_deep_supervision = pytest.mark.parametrize("deep_supervision", [False, True])


@names
def test_every_registered_network_has_a_tiny_config(name):
    assert name in TINY_CONFIGS, f"add a tiny config for '{name}' to TINY_CONFIGS"


@names
@with_and_without_deep_supervision
@pytest.mark.parametrize("training", [False, True])
def test_logits_have_batch_classes_and_input_size(name, deep_supervision, training):
    network = tiny_network(name, deep_supervision).train(training)
    x = tiny_input(network)
    logits = full_resolution(network(x))
    assert logits.shape == (BATCH, NUM_CLASSES, *x.shape[2:])
    assert torch.isfinite(logits).all()


@names
@with_and_without_deep_supervision
def test_backward_gives_every_parameter_a_finite_gradient(name, deep_supervision):
    network = tiny_network(name, deep_supervision).train()
    generator = torch.Generator().manual_seed(2)
    outputs = as_list(network(tiny_input(network)))
    loss = sum(F.cross_entropy(out, torch.randint(0, NUM_CLASSES, (BATCH, *out.shape[2:]), generator=generator))
               for out in outputs)
    assert torch.isfinite(loss)
    loss.backward()
    for param_name, param in network.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{name}: parameter {param_name} gets no gradient"
            assert torch.isfinite(param.grad).all(), f"{name}: parameter {param_name} has a non-finite gradient"


@names
def test_declares_its_spatial_dims_and_rejects_other_inputs(name):
    network = tiny_network(name).eval()
    assert network.spatial_dims == TINY_CONFIGS[name]["spatial_dims"]
    assert network.num_classes == NUM_CLASSES
    assert len(network.required_divisor()) == network.spatial_dims
    x = tiny_input(network)
    with pytest.raises(ValueError, match=f"{network.spatial_dims}D network"):
        network(x[..., 0])  # one spatial axis too few
    with pytest.raises(ValueError, match=f"{network.spatial_dims}D network"):
        network(x.unsqueeze(-1))  # one too many
    with pytest.raises(ValueError, match="input channel"):
        network(x[:, :1])
    with pytest.raises(ValueError, match="multiple of"):
        network(F.pad(x, (0, 1)))


@names
def test_deep_supervision_gives_a_list_in_training_and_a_tensor_in_eval(name):
    network = tiny_network(name, deep_supervision=True)
    x = tiny_input(network)
    outputs = network.train()(x)
    assert isinstance(outputs, list) and len(outputs) >= 2
    assert outputs[0].shape[2:] == x.shape[2:]
    voxels = [out.shape[2:].numel() for out in outputs]
    assert voxels == sorted(voxels, reverse=True) and len(set(voxels)) == len(voxels), "coarser outputs follow"
    assert all(out.shape[:2] == (BATCH, NUM_CLASSES) for out in outputs)
    evaluated = network.eval()(x)
    assert isinstance(evaluated, torch.Tensor) and evaluated.shape == outputs[0].shape


@names
def test_without_deep_supervision_training_gives_a_tensor(name):
    network = tiny_network(name, deep_supervision=False).train()
    assert isinstance(network(tiny_input(network)), torch.Tensor)


@names
def test_feature_dropout_perturbs_training_outputs_only_when_asked(name):
    network = tiny_network(name).train()
    x = tiny_input(network)
    clean = network(x)
    torch.testing.assert_close(network(x, feature_dropout=0.0), clean, rtol=0, atol=0)
    torch.manual_seed(3)
    assert not torch.allclose(network(x, feature_dropout=0.5), clean)
    network.eval()  # like nn.Dropout, the perturbation is a training-mode operation
    torch.testing.assert_close(network(x, feature_dropout=0.5), network(x), rtol=0, atol=0)


@names
@with_and_without_deep_supervision
def test_forward_with_features_gives_decoder_features_at_logit_size(name, deep_supervision):
    network = tiny_network(name, deep_supervision).eval()
    x = tiny_input(network)
    logits, features = network.forward_with_features(x)
    assert features.ndim == logits.ndim and features.shape[0] == BATCH
    assert features.shape[2:] == logits.shape[2:]
    torch.testing.assert_close(logits, network(x), rtol=0, atol=0)
    network.train()
    logits, features = network.forward_with_features(x)
    assert features.shape[2:] == full_resolution(logits).shape[2:]


@names
@with_and_without_deep_supervision
def test_weights_round_trip_through_safetensors(name, deep_supervision, tmp_path):
    # Checkpoints are safetensors (the project rule: nothing is ever unpickled), which refuses tensors that
    # share memory.
    network = tiny_network(name, deep_supervision, seed=0).eval()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    other = tiny_network(name, deep_supervision, seed=1).eval()
    other.load_state_dict(load_file(str(path)), strict=True)
    x = tiny_input(network)
    torch.testing.assert_close(other(x), network(x), rtol=0, atol=0)


@names
def test_every_network_builds_from_a_plan(name, tiny_plan):
    config = network_config_for(tiny_plan, name)
    assert config["name"] == name
    network = build_network(config, 1, NUM_CLASSES)
    assert network.spatial_dims == config.get("spatial_dims", network.spatial_dims)
