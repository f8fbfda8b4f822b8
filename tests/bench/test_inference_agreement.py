"""bench/inference_agreement.py: label agreement between inference modes, and the patch-statistics norm experiment."""

import numpy as np
import torch
from torch import nn

from tests.bench.scripts import load_bench_script


def test_mean_dice_averages_over_the_labels_either_map_holds():
    bench = load_bench_script("inference_agreement")
    a = np.array([0, 1, 1, 2, 0, 0])
    b = np.array([0, 1, 0, 0, 0, 3])
    # label 1: 2*1/(2+1) = 2/3; label 2: 0; label 3: 0 -> mean 2/9
    assert bench.mean_dice(a, b) == 2 / 9
    assert bench.mean_dice(a, a) == 1.0
    assert bench.mean_dice(np.zeros(3), np.zeros(3)) == 1.0


def test_box_mean_shifts_the_box_inside_the_array_at_the_borders():
    bench = load_bench_script("inference_agreement")
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0]).view(1, 1, 5)
    # box 3: voxel 0 -> [1,2,3] = 2; voxel 1 -> [1,2,3] = 2; voxel 2 -> [2,3,4] = 3; voxel 3 -> [3,4,10] = 17/3;
    # voxel 4 -> shifted inside: [3,4,10] = 17/3
    expected = [2.0, 2.0, 3.0, 17 / 3, 17 / 3]
    assert torch.allclose(bench.box_mean(x, [3]).flatten(), torch.tensor(expected))
    # a box as long as the axis is the axis's mean, kept as size 1
    assert bench.box_mean(x, [5]).shape == (1, 1, 1)
    assert float(bench.box_mean(x, [8])) == 4.0


def test_patch_statistics_normalise_an_input_of_the_patch_size_as_the_instance_norm_does_and_are_removed_after():
    bench = load_bench_script("inference_agreement")
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.InstanceNorm3d(4, affine=True),
                            nn.Conv3d(4, 2, 3, stride=2, padding=1), nn.InstanceNorm3d(2, affine=True))
    for norm in (network[1], network[3]):
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    small = torch.randn(1, 1, 8, 8, 8)
    large = torch.randn(1, 1, 16, 8, 8) * torch.linspace(1, 5, 16).view(1, 1, 16, 1, 1)
    with torch.no_grad():
        plain_small, plain_large = network(small), network(large)
        with bench.patch_statistics(network, [8, 8, 8]):
            local_small, local_large = network(small), network(large)
        after = network(large)
    assert torch.allclose(local_small, plain_small, atol=1e-5)
    # a larger input: each voxel sees the statistics of the 8-voxel box around it, not of all 16 along the first axis
    assert not torch.allclose(local_large, plain_large, atol=1e-3)
    assert torch.equal(after, plain_large)
    assert "forward" not in vars(network[1])
