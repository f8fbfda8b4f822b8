"""Network precision: names resolve to autocast dtypes per device, and bfloat16 inference keeps float32 outputs."""

import numpy as np
import pytest
import torch

from tests.conftest import model_plan
from unimos.errors import UnimosError
from unimos.inference.sliding import predict_probabilities
from unimos.networks.registry import build_network
from unimos.training.config import TrainConfig
from unimos.utils.precision import (
    cpu_bfloat16_unit,
    cpu_has_native_bfloat16,
    emulated_precision_warning,
    precision_name,
    resolve_precision,
)


def test_explicit_precisions_resolve_to_their_dtype_on_the_cpu():
    assert resolve_precision("float32", "cpu") is None
    assert resolve_precision("bfloat16", "cpu") is torch.bfloat16


def test_auto_on_the_cpu_is_bfloat16_exactly_when_the_cpu_runs_it_natively():
    expected = torch.bfloat16 if cpu_has_native_bfloat16() else None
    assert resolve_precision("auto", "cpu") is expected


@pytest.mark.parametrize("amx, avx512_bf16, unit, auto", [(True, True, "AMX", torch.bfloat16),
                                                          (False, True, "AVX-512 BF16", torch.bfloat16),
                                                          (False, False, None, None)])
def test_auto_picks_bfloat16_on_amx_and_on_avx512_bf16_cpus(monkeypatch, amx, avx512_bf16, unit, auto):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert cpu_bfloat16_unit() == unit
    assert resolve_precision("auto", "cpu") is auto


@pytest.mark.parametrize("native", [True, False])
def test_explicit_bfloat16_is_warned_about_only_where_the_cpu_would_emulate_it(monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    warning = emulated_precision_warning("bfloat16", "cpu")
    assert (warning is None) is native
    if not native:
        assert "emulated" in warning and "--precision auto or float32" in warning
    for name in ("auto", "float32"):
        assert emulated_precision_warning(name, "cpu") is None


def test_float16_on_the_cpu_and_unknown_names_are_refused_with_the_choices():
    with pytest.raises(UnimosError, match="needs a CUDA device"):
        resolve_precision("float16", "cpu")
    with pytest.raises(UnimosError, match="'half'.*auto"):
        resolve_precision("half", "cpu")


def test_precision_names_round_trip():
    for name in ("float32", "bfloat16"):
        assert precision_name(resolve_precision(name, "cpu")) == name


def test_configs_written_before_precision_keep_their_meaning():
    assert TrainConfig.from_json({"amp": False}).precision == "float32"
    assert TrainConfig.from_json({"amp": True}).precision == "float16"
    assert TrainConfig().precision == "auto"


def _small_network() -> torch.nn.Module:
    torch.manual_seed(0)
    config = {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 3,
              "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "filters": [8, 16, 32], "deep_supervision": False}
    return build_network(config, 1, 4).eval()


def test_bfloat16_windows_give_float32_probabilities_that_agree_with_float32():
    network = _small_network()
    generator = torch.Generator().manual_seed(1)
    # a smooth image, so that the untrained network's classes form regions rather than noise
    image = torch.nn.functional.avg_pool3d(torch.randn(1, 1, 40, 36, 32, generator=generator), 5, 1, 2) * 5
    exact = predict_probabilities(network, image, [24, 24, 24], overlap=0.5)
    rounded = predict_probabilities(network, image, [24, 24, 24], overlap=0.5, precision=torch.bfloat16)
    assert rounded.dtype == torch.float32
    assert torch.allclose(rounded.sum(1), torch.ones_like(rounded.sum(1)), atol=1e-5)
    # bfloat16 keeps 8 bits of mantissa: probabilities move by about 1e-2, argmax labels barely
    assert float((rounded - exact).abs().max()) < 0.1
    agreement = (rounded.argmax(1) == exact.argmax(1)).float().mean()
    assert float(agreement) > 0.97


def test_training_in_bfloat16_keeps_float32_weights_and_finite_losses(tiny_cache, tmp_path):
    from unimos.networks.checkpoint import load_tensors
    from unimos.training.loop import train

    cases, plan = tiny_cache
    config = TrainConfig(iterations=3, checkpoint_every=0, device="cpu", precision="bfloat16")
    result = train(cases, plan, config, tmp_path / "run")
    assert all(np.isfinite(result.losses))
    weights = [v for k, v in load_tensors(result.checkpoint).items() if k.startswith("model.")]
    assert weights and all(w.dtype == torch.float32 for w in weights if w.is_floating_point())


def test_predict_refuses_float16_on_the_cpu_before_writing_anything(tmp_path):
    from unimos.inference.model import LoadedModel
    from unimos.inference.predictor import PredictOptions, predict_files

    model = LoadedModel(_small_network(), model_plan(), ["background", "a", "b", "c"], {"in_channels": 1},
                        torch.device("cpu"))
    with pytest.raises(UnimosError, match="float16 autocast needs a CUDA device"):
        predict_files(model, [tmp_path / "scan.nii.gz"], tmp_path / "out", PredictOptions(precision="float16"))
    assert not (tmp_path / "out").exists()


def test_predict_options_refuse_an_unknown_precision():
    from unimos.inference.predictor import PredictOptions

    with pytest.raises(UnimosError, match="'fp8'"):
        PredictOptions(precision="fp8")
