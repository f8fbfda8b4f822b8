from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DynUNet

from unimos.errors import PlanError
from unimos.networks import DynUNetSegmenter, build_network
from unimos.networks.dynunet import ACTIVATION, NORM

# The wrapper runs MONAI's blocks channels-last (networks/layout.py), which sums in another order than MONAI's
# standard layout: the same function up to float32 rounding, not bit for bit.
SAME_FUNCTION = {"rtol": 1e-4, "atol": 1e-4}
KERNELS = [[3, 3, 3]] * 4
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 1], [2, 2, 2]]
FILTERS = [4, 8, 16, 32]


def plain_and_wrapped(deep_supervision: bool) -> tuple[DynUNet, DynUNetSegmenter]:
    torch.manual_seed(0)
    plain = DynUNet(3, 1, 3, KERNELS, STRIDES, upsample_kernel_size=STRIDES[1:], filters=FILTERS, norm_name=NORM,
                    act_name=ACTIVATION, deep_supervision=deep_supervision, deep_supr_num=len(STRIDES) - 2)
    wrapped = build_network({"name": "dynunet", "spatial_dims": 3, "kernel_size": KERNELS, "strides": STRIDES,
                             "filters": FILTERS, "deep_supervision": deep_supervision}, 1, 3)
    wrapped.load_monai_state_dict(plain.state_dict())
    return plain, wrapped


def test_dynunet_wrapper_matches_monai_dynunet():
    plain, wrapped = plain_and_wrapped(deep_supervision=False)
    x = torch.randn(2, 1, 32, 32, 16)
    for training in (False, True):
        plain.train(training), wrapped.train(training)
        with torch.no_grad():
            torch.testing.assert_close(wrapped(x), plain(x), **SAME_FUNCTION)


def test_deep_supervision_outputs_match_monai_heads():
    plain, wrapped = plain_and_wrapped(deep_supervision=True)
    x = torch.randn(2, 1, 32, 32, 16)
    plain.train(), wrapped.train()
    with torch.no_grad():
        stacked = plain(x)  # MONAI stacks the heads, each interpolated (nearest) to full size
        outputs = wrapped(x)
    assert len(outputs) == stacked.shape[1] == len(STRIDES) - 1
    assert [o.shape[2:] for o in outputs] == [(32, 32, 16), (16, 16, 8), (8, 8, 8)]
    for level, output in enumerate(outputs):
        torch.testing.assert_close(F.interpolate(output, stacked.shape[3:]), stacked[:, level], **SAME_FUNCTION)


def test_decoder_features_are_the_input_of_the_output_convolution():
    _, wrapped = plain_and_wrapped(deep_supervision=False)
    wrapped.eval()
    logits, features = wrapped.forward_with_features(torch.randn(1, 1, 32, 32, 16))
    assert features.shape == (1, FILTERS[0], 32, 32, 16)
    torch.testing.assert_close(wrapped.output_block(features), logits, rtol=0, atol=0)


def test_required_divisor_is_the_product_of_strides_per_axis():
    _, wrapped = plain_and_wrapped(deep_supervision=False)
    assert wrapped.required_divisor() == (8, 8, 4)


def test_builds_a_2d_dynunet_from_2d_kernels_and_strides():
    network = build_network({"name": "dynunet", "kernel_size": [[3, 3]] * 3, "strides": [[1, 1], [2, 2], [2, 2]],
                             "filters": [4, 8, 16]}, 1, 2)
    assert network.spatial_dims == 2
    assert network(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)


@pytest.mark.parametrize("change, message", [
    ({"strides": [[2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]}, "first stride"),
    ({"filters": [4, 8, 16]}, "one entry per level"),
    ({"kernel_size": [[3, 3]] * 4}, "same number of axes"),
    ({"kernel_size": [[4, 4, 4]] * 4}, "even kernel"),
    ({"spatial_dims": 2}, "spatial_dims 2"),
    ({"filter": [4, 8, 16, 32]}, "unknown key"),
    ({"deep_supervision": "yes"}, "deep_supervision"),
    ({"filters": [4, 8, 0, 32]}, "positive integers"),
])
def test_a_bad_plan_network_names_the_problem(change, message):
    config = {"name": "dynunet", "spatial_dims": 3, "kernel_size": KERNELS, "strides": STRIDES, "filters": FILTERS,
              **change}
    with pytest.raises(PlanError, match=message):
        build_network(config, 1, 3)
