import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import model_plan, tiny_training_plan, write_nifti
from unimos.data.io import read_volume
from unimos.data.manifest import load_manifest
from unimos.inference.model import load_model
from unimos.inference.predictor import PredictOptions, predict_files
from unimos.preprocess.cache import open_cache, preprocess_manifest
from unimos.preprocess.plan import with_hashes
from unimos.training.config import TrainConfig
from unimos.training.loop import train


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tests.conftest import tiny_case, write_manifest

    root = tmp_path_factory.mktemp("model")
    img, lab = tiny_case(root, "a", labels={1: (slice(4, 10), slice(4, 10), slice(2, 8))})
    path = write_manifest(root, {"project": {"classes": ["liver"]}, "sources": [
        {"name": "s", "kind": "full", "labels": {1: "liver"},
         "cases": [{"id": "a", "image": str(img), "label": str(lab)}]}]})
    manifest = load_manifest(path)
    plan = tiny_training_plan(manifest)
    plan = with_hashes(plan.model_copy(update={"patch_size": [16, 16, 16]}))
    preprocess_manifest(manifest, plan, root / "cache", workers=1)
    result = train(open_cache(root / "cache", plan), plan, TrainConfig(iterations=2, checkpoint_every=0, device="cpu"),
                   root / "run")
    return load_model(result.checkpoint)


@pytest.mark.parametrize("affine", [np.diag([1.5, 1.5, 4.0, 1.0]), np.diag([-0.9, -0.9, 2.5, 1.0]),
                                    np.array([[0, -1.2, 0, 5], [1.1, 0, 0, -3], [0, 0, 3.0, 7], [0, 0, 0, 1]])])
def test_prediction_has_the_exact_geometry_of_the_input(tiny_model, tmp_path, affine):
    image = np.full((30, 26, 14), -1000, dtype=np.int16)
    image[3:-3, 3:-3, :] = 40
    path = write_nifti(tmp_path / "in" / "scan_0000.nii.gz", image, affine)
    records = predict_files(tiny_model, [path], tmp_path / "out", PredictOptions())
    assert records[0].error is None and records[0].seconds > 0 and records[0].peak_rss_mib > 0
    written = nib.load(tmp_path / "out" / "scan.nii.gz")
    assert written.shape == image.shape
    assert np.allclose(written.affine, affine, atol=1e-5)
    assert (tmp_path / "out" / "labels.json").exists()


def test_a_bad_case_does_not_stop_the_batch(tiny_model, tmp_path):
    noise = np.random.default_rng(0).integers(-100, 100, (20, 20, 10)).astype(np.int16)
    good = write_nifti(tmp_path / "in" / "good_0000.nii.gz", noise, np.eye(4))
    bad = tmp_path / "in" / "bad_0000.nii.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated mid-stream
    records = {r.case_id: r for r in predict_files(tiny_model, [bad, good], tmp_path / "out", PredictOptions())}
    assert records["good"].error is None and (tmp_path / "out" / "good.nii.gz").exists()
    assert "bad_0000.nii.gz" in records["bad"].error and not (tmp_path / "out" / "bad.nii.gz").exists()


@pytest.mark.parametrize("relative", ["totalseg/example_ct.nii.gz", "dicom_ct/series"])
def test_prediction_on_real_ct_keeps_its_geometry(tiny_model, shared_data, tmp_path, relative):
    source = shared_data / relative
    records = predict_files(tiny_model, [source], tmp_path / "out", PredictOptions(overlap=0.25))
    assert records[0].error is None, records[0].error
    written = nib.load(records[0].output)
    reference = read_volume(source)
    assert written.shape == reference.shape
    assert np.allclose(written.affine, reference.affine, atol=1e-4)


def train_tiny_2d_model(tiny_manifest, root, **settings):
    """A pipofan2d model trained 2 steps on the tiny manifest, loaded back from its checkpoint."""
    manifest = load_manifest(tiny_manifest)
    plan = tiny_training_plan(manifest)
    plan = with_hashes(plan.model_copy(update={"network": {**plan.network, "filters": [4, 8, 16]}}))
    preprocess_manifest(manifest, plan, root / "cache", workers=1)
    config = TrainConfig(network="pipofan2d", iterations=2, checkpoint_every=0, device="cpu", **settings)
    return load_model(train(open_cache(root / "cache", plan), plan, config, root / "run").checkpoint)


def predict_in_input_geometry(model, root):
    """Predict a (30, 26, 14) scan; the record, after checking the label map has the input's shape and affine."""
    affine = np.diag([-1.5, 1.5, 3.0, 1.0])
    array = np.full((30, 26, 14), -1000, np.int16)
    array[3:-3, 3:-3, :] = 40
    image = write_nifti(root / "in" / "scan_0000.nii.gz", array, affine)
    record = predict_files(model, [image], root / "out", PredictOptions())[0]
    assert record.error is None, record.error
    written = nib.load(record.output)
    assert written.shape == (30, 26, 14) and np.allclose(written.affine, affine)
    return record


def test_2d_network_trains_on_axial_slices_and_predicts_a_volume(tiny_manifest, tmp_path):
    model = train_tiny_2d_model(tiny_manifest, tmp_path)
    assert model.network.spatial_dims == 2 and model.meta["patch_size"] == [8, 8]
    predict_in_input_geometry(model, tmp_path)


def test_a_2d_network_that_resizes_slices_trains_on_crops_and_predicts_in_the_input_geometry(tiny_manifest, tmp_path):
    from unimos.inference.sliding import predict_probabilities

    model = train_tiny_2d_model(tiny_manifest, tmp_path, slice_resize=32, slice_patch=24)
    assert model.network.slice_resize == 32 and model.meta["patch_size"] == [24, 24]
    volume = torch.randn(1, 1, 30, 26, 5)
    probs = predict_probabilities(model.network, volume, model.meta["patch_size"])
    assert probs.shape == (1, model.network.num_classes, 30, 26, 5)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1, 30, 26, 5), atol=1e-4)
    assert predict_in_input_geometry(model, tmp_path).window["size"] == [24, 24]


@pytest.mark.parametrize("settings, complaint", [
    ({"network": "dynunet", "slice_resize": 32}, "is 3D"),
    ({"network": "pipofan2d", "slice_patch": 16}, "no --slice-resize"),
    ({"network": "pipofan2d", "slice_resize": 32, "slice_patch": 48}, "larger than"),
    ({"network": "pipofan2d", "slice_resize": 30}, "multiple of 4"),
    ({"network": "pipofan2d", "slice_resize": 32, "roi_margin_mm": 10.0}, "fine stage"),
])
def test_slice_resize_settings_that_cannot_work_are_refused(tiny_cache, tmp_path, settings, complaint):
    from unimos.errors import PlanError, UnimosError

    cases, plan = tiny_cache
    plan = with_hashes(plan.model_copy(update={"network": {**plan.network, "filters": [4, 8, 16]}}))
    config = TrainConfig(iterations=1, checkpoint_every=0, device="cpu", **settings)
    with pytest.raises((UnimosError, PlanError), match=complaint):
        train(cases, plan, config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint_final.json").exists()


def test_a_plan_naming_pipofan2d_without_spatial_dims_can_resize_slices():
    from unimos.training.loop import network_config

    plan = model_plan(network={"name": "pipofan2d", "filters": [8, 16, 32]})
    config = network_config(TrainConfig(network="pipofan2d", slice_resize=32), plan)
    assert config["slice_resize"] == 32
    planned = network_config(TrainConfig(network="pipofan2d", slice_patch=16),
                             model_plan(network={**plan.network, "slice_resize": 64}))
    assert planned["slice_resize"] == 64  # the plan's resize, cropped by the command line's patch


def test_resuming_with_another_slice_resize_is_refused(tiny_cache, tmp_path):
    from unimos.networks.checkpoint import CheckpointError

    cases, plan = tiny_cache
    plan = with_hashes(plan.model_copy(update={"network": {**plan.network, "filters": [4, 8, 16]}}))
    started = TrainConfig(network="pipofan2d", slice_resize=32, iterations=2, checkpoint_every=1, device="cpu")
    train(cases, plan, started, tmp_path / "run")
    for changed in ({"slice_resize": 0}, {"slice_patch": 16}):
        with pytest.raises(CheckpointError, match="--slice-resize"):
            train(cases, plan, TrainConfig(**{**started.to_json(), **changed, "iterations": 3}), tmp_path / "run",
                  resume=True)


def test_a_cascade_refuses_a_fine_model_that_resizes_slices():
    from types import SimpleNamespace

    from unimos.errors import UnimosError
    from unimos.inference.cascade import check_cascade_pair

    coarse = SimpleNamespace(class_names=["background", "liver"], meta={"in_channels": 1}, network=object())
    fine = SimpleNamespace(class_names=["background", "liver"], meta={"in_channels": 1},
                           network=SimpleNamespace(slice_resize=256))
    with pytest.raises(UnimosError, match="resizes whole slices"):
        check_cascade_pair(coarse, fine)
    check_cascade_pair(coarse, SimpleNamespace(**{**vars(fine), "network": SimpleNamespace(slice_resize=0)}))
