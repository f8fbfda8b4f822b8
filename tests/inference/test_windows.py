"""Window choice for prediction: the plan's patch, or "auto" (the fewest, largest windows the memory budget allows)."""

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers.utils import _get_scan_interval
from torch import nn

from tests.conftest import write_nifti
from unimos.errors import UnimosError
from unimos.inference.model import load_model
from unimos.inference.predictor import PredictOptions, predict_files
from unimos.inference.sliding import predict_probabilities
from unimos.inference.windows import (
    bytes_per_window_voxel,
    choose_windows,
    full_resolution_width,
    image_buffer_bytes,
    patch_windows,
    windows_along,
)

PATCH, DIVISOR = (96, 96, 96), (16, 16, 16)
PER_VOXEL = bytes_per_window_voxel(width=32, n_classes=14, in_channels=1)
ABDOMEN_3MM = (122, 99, 112)  # totalseg/example_ct.nii.gz on the 3 mm grid, cropped to the body


def _monai_window_count(image_shape, window, overlap) -> int:
    """How many windows MONAI's sliding_window_inference really places (its own helpers)."""
    padded = [max(n, w) for n, w in zip(image_shape, window)]
    interval = _get_scan_interval(padded, window, len(window), overlap)
    return len(dense_patch_slices(padded, window, interval))


def test_auto_takes_the_whole_padded_volume_when_it_fits():
    plan = choose_windows(ABDOMEN_3MM, PATCH, DIVISOR, 0.5, available_bytes=4 * 2**30, per_voxel_bytes=PER_VOXEL)
    assert plan.mode == "auto" and plan.size == (128, 112, 112) and plan.count == 1
    patch = patch_windows(ABDOMEN_3MM, PATCH, 0.5, PER_VOXEL)
    assert patch.count == 8  # the 2x2x2 windows of the peers; auto computes 1.6 M voxels instead of 7.1 M
    assert plan.count * math.prod(plan.size) < 0.25 * patch.count * math.prod(patch.size)


@pytest.mark.parametrize("shape", [ABDOMEN_3MM, (244, 198, 224), (61, 50, 300), (30, 200, 97)])
@pytest.mark.parametrize("available_gib", [0.05, 0.3, 0.8, 1.5, 3.0, 20.0])
def test_the_chosen_windows_never_exceed_the_memory_available(shape, available_gib):
    available = available_gib * 2**30
    fixed = image_buffer_bytes(shape, 14)
    plan = choose_windows(shape, PATCH, DIVISOR, 0.5, available, PER_VOXEL, fixed)
    patch = patch_windows(shape, PATCH, 0.5, PER_VOXEL, fixed, batch=1)
    if plan.mode == "auto":
        assert plan.fits and plan.estimated_bytes - fixed <= available
        assert PER_VOXEL * math.prod(plan.size) <= available
    else:  # not even one patch fits: the patch mode, flagged as not fitting
        assert not plan.fits and PER_VOXEL * math.prod(PATCH) > available
    assert all(w % d == 0 for w, d in zip(plan.size, DIVISOR))
    assert all(w >= min(p, -(-n // d) * d) for w, p, n, d in zip(plan.size, PATCH, shape, DIVISOR))
    assert plan.count <= patch.count
    assert plan.count * math.prod(plan.size) <= patch.count * math.prod(patch.size)
    assert _monai_window_count(shape, plan.size, plan.overlap) == plan.count


def test_more_memory_never_means_more_compute():
    shape = (244, 198, 224)  # the abdomen on a 1.5 mm grid: too large for one window within a few GiB
    computes = []
    for gib in (0.3, 0.6, 1.2, 2.4, 4.8, 9.6, 19.2):
        plan = choose_windows(shape, PATCH, DIVISOR, 0.5, gib * 2**30, PER_VOXEL)
        computes.append(plan.count * math.prod(plan.size))
    assert computes == sorted(computes, reverse=True) and computes[-1] < computes[0]


def test_auto_falls_back_to_the_patch_when_nothing_larger_fits():
    plan = choose_windows(ABDOMEN_3MM, PATCH, DIVISOR, 0.5, available_bytes=1e6, per_voxel_bytes=PER_VOXEL)
    assert plan.mode == "patch" and plan.size == PATCH and plan.count == 8 and plan.batch == 1 and not plan.fits


@pytest.mark.parametrize("length, window, overlap", [(122, 96, 0.5), (99, 96, 0.5), (300, 160, 0.3),
                                                     (97, 112, 0.25), (500, 96, 0.75)])
def test_window_counts_follow_monai(length, window, overlap):
    assert windows_along(length, window, overlap) == _monai_window_count((length,), (window,), (overlap,))


def test_the_window_mode_is_checked_with_a_clear_error():
    with pytest.raises(UnimosError, match="'whole' is not a window mode.*Fix: use one of \\['patch', 'auto'\\]"):
        PredictOptions(window="whole")


class _Pointwise(nn.Module):
    """A network of 1x1x1 convolutions: its output at a voxel depends on that voxel alone, so any windows give
    exactly the same probabilities, and a difference can only come from the stitching itself."""

    spatial_dims = 3

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv3d(1, 8, 1), nn.LeakyReLU(), nn.Conv3d(8, 3, 1))

    def required_divisor(self) -> tuple[int, int, int]:
        return (4, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _SmallConv(nn.Module):
    """Two 3x3x3 convolutions, no normalisation: windows differ only where a window border's zero padding reaches."""

    spatial_dims = 3

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.LeakyReLU(), nn.Conv3d(8, 3, 3, padding=1))

    def required_divisor(self) -> tuple[int, int, int]:
        return (4, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _blobs(shape=(40, 36, 28), seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    image = np.zeros((1, 1, *shape), np.float32)
    image[..., 5:20, 8:30, 4:20] = 1.0
    image[..., 22:36, 4:18, 10:26] = -1.0
    return torch.from_numpy(image + rng.normal(0, 0.3, image.shape).astype(np.float32))


@pytest.mark.parametrize("available", [1e12, 2.5e6])  # the whole volume in one window; several large tiles
def test_auto_windows_give_the_patch_prediction_of_a_pointwise_network(available):
    torch.manual_seed(0)
    network, image = _Pointwise().eval(), _blobs()
    per_voxel = bytes_per_window_voxel(full_resolution_width(network), 3, 1)
    plan = choose_windows(image.shape[2:], (16, 16, 16), (4, 4, 4), 0.5, available, per_voxel)
    assert plan.mode == "auto" and (plan.count == 1) == (available > 1e9)
    patch = predict_probabilities(network, image, (16, 16, 16), 0.5)
    auto = predict_probabilities(network, image, plan.size, plan.overlap, sw_batch_size=plan.batch)
    assert auto.shape == patch.shape == (1, 3, 40, 36, 28)
    assert torch.allclose(auto, patch, atol=1e-5)


def test_auto_windows_match_the_patch_prediction_of_a_convolutional_network_away_from_padding():
    torch.manual_seed(0)
    network, image = _SmallConv().eval(), _blobs()
    plan = choose_windows(image.shape[2:], (16, 16, 16), (4, 4, 4), 0.5, 1e12, 1)
    patch = predict_probabilities(network, image, (16, 16, 16), 0.5)
    auto = predict_probabilities(network, image, plan.size, plan.overlap, sw_batch_size=plan.batch)
    agree = (auto.argmax(1) == patch.argmax(1)).float().mean().item()
    assert agree > 0.95 and (auto - patch).abs().mean().item() < 0.005


def _untrained_checkpoint(folder: Path) -> Path:
    """A checkpoint of a 3 mm plan with a tiny DynUNet (filters 4-16, patch 16^3) and fresh weights."""
    from unimos.data.taxonomy import abdominal_taxonomy
    from unimos.networks.checkpoint import save_checkpoint
    from unimos.networks.registry import build_network
    from unimos.preprocess.plan import make_plan, with_hashes

    fingerprint = {"median_spacing_mm": [3.0] * 3, "spacing_percentile_10_mm": [3.0] * 3,
                   "median_extent_mm": [120.0] * 3,
                   "modalities": {"CT": {"percentile_00_5": -200.0, "percentile_99_5": 300.0, "mean": 60.0,
                                         "std": 70.0}}}
    plan = make_plan(fingerprint, abdominal_taxonomy(["liver", "spleen"]), "3mm")
    network_config = {**plan.network, "kernel_size": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                      "filters": [4, 8, 16]}
    plan = with_hashes(plan.model_copy(update={"patch_size": [16, 16, 16], "network": network_config}))
    torch.manual_seed(0)
    network = build_network(plan.network, 1, 3)
    record = plan.model_record()
    meta = {"step": 0, "plan_hash": plan.hash, "classes": record["classes"], "in_channels": 1,
            "network": plan.network, "patch_size": plan.patch_size, "plan": record,
            "strategy": "supervised", "method": "partial"}
    return save_checkpoint(folder / "checkpoint_untrained", torch.nn.ModuleDict({"main": network}), meta)


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    return load_model(_untrained_checkpoint(tmp_path_factory.mktemp("model")))


def _body_scan(path: Path) -> Path:
    image = np.full((40, 36, 30), -1000, np.int16)
    image[4:36, 4:32, :] = 40
    image[10:22, 8:20, 6:20] = 150
    return write_nifti(path, image, np.diag([3.0, 3.0, 3.0, 1.0]))


@pytest.mark.parametrize("window, mode, single", [("patch", "patch", False), ("auto", "auto", True)])
def test_each_case_records_its_stage_seconds_and_windows(untrained_model, tmp_path, window, mode, single):
    scan = _body_scan(tmp_path / "in" / "scan.nii.gz")
    record = predict_files(untrained_model, [scan], tmp_path / "out", PredictOptions(window=window))[0]
    assert record.error is None, record.error
    assert list(record.stages) == ["read", "prepare", "network", "postprocess", "resample_back", "write"]
    assert all(s >= 0 for s in record.stages.values()) and sum(record.stages.values()) <= record.seconds
    assert record.window["mode"] == mode and (record.window["count"] == 1) == single
    written = nib.load(tmp_path / "out" / "scan.nii.gz")
    assert written.shape == (40, 36, 30)


def test_auto_with_no_memory_to_spare_falls_back_to_patch_windows(untrained_model, tmp_path):
    from unimos.data.io import read_volume
    from unimos.inference.predictor import predict_volume

    scan = _body_scan(tmp_path / "in" / "scan.nii.gz")
    window: dict = {}
    # a budget below what the process already holds: no window larger than the patch is planned
    labels = predict_volume(untrained_model, [read_volume(scan)], PredictOptions(window="auto", memory_budget_gib=0.01),
                            window=window)
    assert window["mode"] == "patch" and window["batch"] == 1 and not window["fits"]
    assert labels.shape == (40, 36, 30)


def test_predict_cli_takes_the_window_option(tmp_path, untrained_model):
    from typer.testing import CliRunner

    from unimos.cli.main import app

    checkpoint = _untrained_checkpoint(tmp_path / "model")
    scan = _body_scan(tmp_path / "in" / "scan.nii.gz")
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(scan), "--out", str(tmp_path / "pred"),
                                      "--window", "auto"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred" / "scan.nii.gz").exists()
    bad = CliRunner().invoke(app, ["predict", str(checkpoint), str(scan), "--out", str(tmp_path / "pred2"),
                                   "--window", "whole"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output and "'whole' is not a window mode" in bad.output
