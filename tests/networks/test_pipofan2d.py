from __future__ import annotations

import pytest
import torch

from unimos.errors import PlanError
from unimos.networks import PipoFan2D, build_network


def test_any_height_and_width_divisible_by_the_divisor_work():
    network = build_network({"name": "pipofan2d", "filters": [4, 8, 16]}, 1, 3).eval()
    assert network.required_divisor() == (4, 4)
    assert network(torch.randn(1, 1, 32, 48)).shape == (1, 3, 32, 48)


def test_default_network_segments_a_unimos_224_slice():
    network = build_network({"name": "pipofan2d"}, 1, 4).eval()
    assert network.filters[0] == 32 and network.required_divisor() == (16, 16)
    with torch.no_grad():
        assert network(torch.randn(1, 1, 224, 224)).shape == (1, 4, 224, 224)


def test_fusion_starts_as_the_mean_of_the_side_outputs():
    # Zero-initialised attention: equal weights for every scale until training says otherwise.
    network = PipoFan2D(1, 3, filters=[4, 8, 16], deep_supervision=True).train()
    x = torch.randn(1, 1, 32, 32)
    fused, half = network(x)  # two scales: the fused logits and the side output at 1/2
    full_side = network.side_outputs[0](network.forward_with_features(x)[1])
    upsampled_half = torch.nn.functional.interpolate(half, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(fused, (full_side + upsampled_half) / 2)


@pytest.mark.parametrize("change, message", [
    ({"spatial_dims": 3}, "spatial_dims 3"),
    ({"filters": [4]}, "2 to"),
    ({"filters": [4, 8, 16, 32, 64, 128, 256]}, "2 to"),
    ({"width": 32}, "unknown key"),
])
def test_a_bad_config_names_the_problem(change, message):
    with pytest.raises(PlanError, match=message):
        build_network({"name": "pipofan2d", **change}, 1, 3)
