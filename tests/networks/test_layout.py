from __future__ import annotations

import pytest
import torch
from torch import nn

from unimos.networks import build_network
from unimos.networks.layout import SampleInstanceNorm2d, SampleInstanceNorm3d, layout_keeping_norms

LAYOUTS = {2: torch.channels_last, 3: torch.channels_last_3d}


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_sample_instance_norm_equals_instance_norm_and_keeps_the_layout(spatial_dims, channels_last):
    torch.manual_seed(0)
    reference = (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(5, affine=True)
    nn.init.normal_(reference.weight), nn.init.normal_(reference.bias)
    twin = layout_keeping_norms(nn.Sequential(reference))[0]
    assert isinstance(twin, SampleInstanceNorm2d if spatial_dims == 2 else SampleInstanceNorm3d)
    assert twin.weight is reference.weight and twin.bias is reference.bias  # shared, so the state dict is the same
    x = torch.randn(3, 5, *[6] * spatial_dims) * 4 + 2
    if channels_last:
        x = x.contiguous(memory_format=LAYOUTS[spatial_dims])
    out = twin(x)
    torch.testing.assert_close(out, reference(x.contiguous()), rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=LAYOUTS[spatial_dims]) == channels_last
    torch.testing.assert_close(twin(x[0]), reference(x[0].contiguous()), rtol=1e-5, atol=1e-5)  # unbatched input


def test_3d_dynunet_runs_channels_last_with_the_same_state_dict_keys_and_standard_logits():
    config = {"name": "dynunet", "spatial_dims": 3, "kernel_size": [[3, 3, 3]] * 3,
              "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "filters": [4, 8, 16]}
    network = build_network(config, 1, 3)
    assert not any(isinstance(m, (nn.InstanceNorm3d)) and not isinstance(m, SampleInstanceNorm3d)
                   for m in network.modules())
    # conv2 (4 -> 4 channels): conv1 has one input channel, where both layouts coincide and the check could not fail
    assert network.input_block.conv2.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    keys = set(network.state_dict())
    assert {"input_block.norm1.weight", "input_block.norm1.bias"} <= keys
    assert not any("running" in k for k in keys)
    logits, features = network.eval().forward_with_features(torch.randn(2, 1, 16, 16, 16))
    assert features.is_contiguous(memory_format=torch.channels_last_3d)  # the convolutions ran channels-last
    assert logits.is_contiguous()  # handed to losses and window sums in the standard layout
