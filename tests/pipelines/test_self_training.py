"""Self-training (papers 001 and 004): class-wise label fusion, confidence filtering, and a teacher -> student round."""

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import model_plan, tiny_training_plan
from unimos.data.manifest import load_manifest
from unimos.errors import UnimosError
from unimos.networks.checkpoint import read_checkpoint_meta
from unimos.pipelines import self_training as self_training_module
from unimos.pipelines.pseudo_labels import (
    FROM_ANNOTATION,
    FROM_FALLBACK,
    FROM_PSEUDO,
    fuse_labels,
    mean_confidence,
    needs_pseudo_label,
    pseudo_label_cases,
)
from unimos.pipelines.self_training import run_self_training, self_training_options
from unimos.preprocess.cache import open_cache, preprocess_manifest
from unimos.strategies.base import STRATEGIES
from unimos.training import loop as loop_module
from unimos.training.config import TrainConfig
from unimos.utils.runtime import resolve_runtime

# classes 0 background, 1 liver, 2 spleen; a liver-only source: "1" = {liver}, "0" = {background, spleen}
LIVER_ONLY = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=bool)
FULL = np.eye(3, dtype=bool)


def probs_of(*columns):
    """(C, N) probabilities from per-voxel columns."""
    return np.array(columns, dtype=np.float32).T


def test_a_known_label_always_overrides_the_pseudo_label():
    label = np.array([1, 2, 0, 1])
    pseudo = np.array([0, 1, 2, 1])
    probs = probs_of([0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1])
    fused, origin = fuse_labels(pseudo, probs, label, np.ones(4, bool), FULL)
    assert fused.tolist() == [1, 2, 0, 1]
    assert origin.tolist() == [FROM_ANNOTATION] * 4


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, 12, elements=st.integers(0, 2)), hnp.arrays(np.uint8, 12, elements=st.integers(0, 2)),
       hnp.arrays(np.bool_, 12), hnp.arrays(np.float32, (3, 12), elements=st.floats(0.0625, 1.0, width=32)),
       st.sampled_from([LIVER_ONLY, FULL]))
def test_fusion_never_leaves_a_voxel_outside_its_candidate_set(label, pseudo, region, probs, table):
    label = np.where(region, label, 0)
    fused, origin = fuse_labels(pseudo, probs, label, region, table)
    inside = region
    assert table[label[inside], fused[inside]].all()
    known = inside & (table.sum(1)[label] == 1)
    assert (fused[known] == label[known]).all() and (origin[known] == FROM_ANNOTATION).all()
    assert (fused[~inside] == pseudo[~inside]).all()  # off the annotated region every class is a candidate


def test_partial_case_takes_pseudo_labels_only_among_its_candidates():
    # voxel 0: labeled liver, teacher says background -> liver (known)
    # voxel 1: labeled 0, teacher says spleen -> spleen ({bg, spleen} admits it)
    # voxel 2: labeled 0, teacher says liver -> not a candidate; most probable of {bg 0.2, spleen 0.3} = spleen
    # voxel 3: labeled 0, teacher says background -> background
    label = np.array([1, 0, 0, 0])
    pseudo = np.array([0, 2, 1, 0])
    probs = probs_of([0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3], [0.9, 0.05, 0.05])
    fused, origin = fuse_labels(pseudo, probs, label, np.ones(4, bool), LIVER_ONLY)
    assert fused.tolist() == [1, 2, 2, 0]
    assert origin.tolist() == [FROM_ANNOTATION, FROM_PSEUDO, FROM_FALLBACK, FROM_PSEUDO]


def test_sparse_case_keeps_annotated_slices_and_is_pseudo_labeled_elsewhere():
    label = np.zeros((2, 3), np.uint8)
    label[0] = [1, 2, 0]
    region = np.zeros((2, 3), bool)
    region[0] = True
    pseudo = np.array([[2, 2, 1], [1, 0, 2]])
    probs = np.full((3, 2, 3), 1 / 3, np.float32)
    fused, origin = fuse_labels(pseudo, probs, label, region, FULL)
    assert fused.tolist() == [[1, 2, 0], [1, 0, 2]]
    assert origin.tolist() == [[FROM_ANNOTATION] * 3, [FROM_PSEUDO] * 3]


def test_unlabeled_case_takes_the_pseudo_label_everywhere():
    pseudo = np.array([[0, 1], [2, 1]])
    fused, origin = fuse_labels(pseudo, np.zeros((3, 2, 2), np.float32))
    assert fused.tolist() == [[0, 1], [2, 1]] and (origin == FROM_PSEUDO).all()


def test_confidence_averages_the_max_softmax_over_teacher_decided_foreground():
    probs = probs_of([0.1, 0.9, 0.0], [0.3, 0.0, 0.7], [0.8, 0.2, 0.0], [0.0, 1.0, 0.0])
    fused = np.array([1, 2, 0, 1])
    origin = np.array([FROM_PSEUDO, FROM_PSEUDO, FROM_PSEUDO, FROM_ANNOTATION])
    assert mean_confidence(probs, fused, origin) == pytest.approx((0.9 + 0.7) / 2)
    assert mean_confidence(probs, np.zeros(4), origin) == 0.0


def test_options_are_checked_and_the_strategy_is_marked_multi_round():
    assert STRATEGIES.get("self_training").multi_round
    assert self_training_options(TrainConfig(strategy="self_training"))["rounds"] == 1
    with pytest.raises(UnimosError, match="rounds"):
        self_training_options(TrainConfig(strategy="self_training", strategy_options={"rounds": 0}))
    with pytest.raises(UnimosError, match="min_confidence"):
        self_training_options(TrainConfig(strategy="self_training", strategy_options={"min_confidence": "high"}))
    with pytest.raises(UnimosError, match="no option"):
        self_training_options(TrainConfig(strategy="self_training", strategy_options={"round": 2}))


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def one_torch_thread():
    """The loop's `threads` setting is process-wide: restore it so later tests run as before."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_round_trip_writes_pseudo_labels_and_trains_a_student_from_them(tiny_manifest, tmp_path, one_torch_thread,
                                                                        monkeypatch):
    manifest = load_manifest(tiny_manifest)
    plan = tiny_training_plan(manifest)
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    cached = open_cache(tmp_path / "cache", plan)
    by_id = {c.case_id: c for c in cached}
    before = {c.case_id: _digest(c.folder) for c in cached}
    assert [c.case_id for c in cached if needs_pseudo_label(c, True)] == ["part_0", "part_1", "unl_0"]
    assert [c.case_id for c in cached if needs_pseudo_label(c, False)] == ["unl_0"]

    # one thread: on 2 shared cores, oversubscribed sliding-window inference is ten times slower
    config = TrainConfig(strategy="self_training", iterations=3, checkpoint_every=0, device="cpu", seed=1,
                         threads=1, augment=False)
    run = tmp_path / "run"
    steps = []
    resolved = []  # every resolution of device + precision, by the pipeline or by a round's training loop

    def counted(device, precision):
        resolved.append((device, precision))
        return resolve_runtime(device, precision)

    for module in (self_training_module, loop_module):
        monkeypatch.setattr(module, "resolve_runtime", counted)
    result = run_self_training(cached, plan, config, run, validation_cases=[by_id["full_1"]],
                               progress=lambda done, total, loss: steps.append((done, total)))

    assert steps[-1] == (6, 6)
    assert resolved == [("cpu", "auto")]  # once for both trainings, the pseudo-label pass and the validations
    assert result.checkpoint == run / "round_1" / "checkpoint_final"
    assert read_checkpoint_meta(run / "round_0" / "checkpoint_final")["strategy"] == "supervised"
    assert read_checkpoint_meta(result.checkpoint)["strategy"] == "self_training"
    assert [r.round for r in result.rounds] == [0, 1] and all(r.val_dice for r in result.rounds)
    assert result.rounds[1].kept == ["part_0", "part_1", "unl_0"]
    for case_id in ("part_0", "part_1", "unl_0"):
        image = nib.load(run / "round_1" / "pseudo_labels" / f"{case_id}.nii.gz")
        assert np.allclose(image.affine, np.asarray(by_id[case_id].meta["affine"]))
        provenance = json.loads((run / "round_1" / "pseudo_labels" / f"{case_id}.json").read_text())
        assert provenance["kept"] and provenance["teacher_checkpoint"] == str(run / "round_0" / "checkpoint_final")
        pseudo_meta = json.loads((run / "round_1" / "pseudo_cache" / case_id / "meta.json").read_text())
        assert pseudo_meta["kind"] == "pseudo" and pseudo_meta["annotated_classes"] == [1, 2]
    # the partial case's annotated liver survives fusion, whatever the 3-step teacher predicted
    original = np.asarray(by_id["part_0"].label())
    fused = np.load(run / "round_1" / "pseudo_cache" / "part_0" / "label.npy")
    assert (fused[original == 1] == 1).all() and not ((fused == 1) & (original == 0)).any()
    assert "liver" in json.loads((run / "round_1" / "pseudo_labels" / "part_0.json").read_text())[
        "classes_from_annotation"]
    assert json.loads((run / "self_training.json").read_text())["checkpoint"] == str(result.checkpoint)
    again = run_self_training(cached, plan, config, run, resume=True)  # finished rounds are not trained again
    assert again.steps == 0 and again.checkpoint == result.checkpoint

    # a threshold nothing reaches drops every case: written for inspection, but no pseudo case to train on
    dropped = pseudo_label_cases([by_id["unl_0"]], result.checkpoint, plan, tmp_path / "strict", 2,
                                 {**self_training_options(config), "min_confidence": 1.0})
    assert dropped[0][1] is None and not dropped[0][0].kept
    assert not (tmp_path / "strict" / "pseudo_cache").exists()
    assert (tmp_path / "strict" / "pseudo_labels" / "unl_0.nii.gz").exists()

    # with a coarse model (here the teacher itself: same plan), the teacher predicts inside the cascade's box only
    import torch

    import unimos.pipelines.pseudo_labels as pseudo_labels

    def liver_everywhere(network, image, *args, **kwargs):  # a teacher that calls every voxel it sees liver
        probabilities = torch.zeros((1, 3, *image.shape[2:]))
        probabilities[:, 1] = 1.0
        return probabilities

    box = ((1, 1, 1), (4, 4, 4))
    monkeypatch.setattr(pseudo_labels, "coarse_region", lambda *args, **kwargs: box)
    monkeypatch.setattr(pseudo_labels, "predict_probabilities", liver_everywhere)
    cascaded = pseudo_label_cases([by_id["unl_0"]], result.checkpoint, plan, tmp_path / "cascade", 2,
                                  {**self_training_options(config), "coarse": str(run / "round_0" / "checkpoint_final"),
                                   "largest_component": False})
    record, case = cascaded[0]
    assert record.cascade_box == [[1, 1, 1], [4, 4, 4]] and record.coarse_found
    fused = np.load(case.folder / "label.npy")
    outside = np.ones(fused.shape, dtype=bool)
    outside[1:4, 1:4, 1:4] = False
    assert (fused[outside] == 0).all() and (fused[1:4, 1:4, 1:4] == 1).all()

    assert {c.case_id: _digest(c.folder) for c in open_cache(tmp_path / "cache", plan)} == before


def test_scale_box_maps_a_coarse_box_outwards_onto_the_fine_grid():
    from unimos.pipelines.pseudo_labels import scale_box

    # 6 mm voxels 2..4 cover 12..30 mm: 3 mm voxels 4..9; an edge that falls inside a fine voxel keeps that voxel
    assert scale_box(((2, 3, 0), (5, 6, 4)), (6, 6, 6), (3, 3, 2.5), (9, 20, 20)) == ((4, 6, 0), (9, 12, 10))
    assert scale_box(((1, 1, 1), (2, 2, 2)), (5, 5, 5), (3, 3, 3), (10, 10, 10)) == ((1, 1, 1), (4, 4, 4))


class _ThresholdNet:
    """A stand-in coarse network: class 1 wherever the input exceeds 0.5."""

    def __call__(self, x):
        return __import__("torch").cat([0.5 - x, x - 0.5], dim=1)

    def eval(self):
        return self

    def parameters(self):
        return iter(())


def test_coarse_region_is_the_box_the_coarse_model_labels_scaled_to_the_fine_grid():
    import types

    import torch

    from unimos.pipelines.pseudo_labels import coarse_region

    coarse = types.SimpleNamespace(plan=model_plan(target_spacing_mm=[2.0, 2.0, 2.0], patch_size=[8, 8, 8]), meta={},
                                   network=_ThresholdNet(), device=torch.device("cpu"))
    image = np.zeros((1, 16, 16, 16), dtype=np.float32)
    image[0, 4:8, 4:8, 4:8] = 1.0  # 1 mm grid; on the 2 mm grid (zoom 8/16 by linear interpolation) voxels 2..3
    assert coarse_region(coarse, image, (1.0, 1.0, 1.0), 0.0) == ((4, 4, 4), (8, 8, 8))
    assert coarse_region(coarse, image, (1.0, 1.0, 1.0), 3.0) == ((1, 1, 1), (11, 11, 11))  # 3 voxels of 1 mm
    # a long axis keeps its scale: 1.5 mm -> 6 mm (zoom 1/4) and back, organ at fine voxels 240..259 of 300
    long = types.SimpleNamespace(plan=model_plan(target_spacing_mm=[6.0, 6.0, 6.0], patch_size=[80, 8, 8]), meta={},
                                 network=_ThresholdNet(), device=torch.device("cpu"))
    image = np.zeros((1, 300, 16, 16), dtype=np.float32)
    image[0, 240:260, 4:12, 4:12] = 1.0  # coarse voxels 60..64 (edges at 360 and 390 mm)
    assert coarse_region(long, image, (1.5, 1.5, 1.5), 0.0) == ((240, 4, 4), (260, 12, 12))
    assert coarse_region(coarse, np.zeros_like(image), (1.0, 1.0, 1.0), 2.0) is None


def test_a_coarse_model_of_other_classes_or_normalisation_is_refused_naming_the_option():
    import types

    from unimos.pipelines.pseudo_labels import check_coarse_model

    plan = model_plan(classes=[{"name": "liver"}, {"name": "spleen"}],
                      normalisation={"CT": {"scheme": "ct_clip_zscore"}})
    good = types.SimpleNamespace(class_names=["background", "liver", "spleen"], plan=plan.model_copy())
    check_coarse_model(good, plan, "coarse_run/checkpoint_final")
    other = types.SimpleNamespace(class_names=["background", "liver"], plan=plan.model_copy())
    with pytest.raises(UnimosError, match="coarse_run/checkpoint_final segments"):
        check_coarse_model(other, plan, "coarse_run/checkpoint_final")
    renormalised = types.SimpleNamespace(class_names=good.class_names, plan=model_plan(
        classes=[{"name": "liver"}, {"name": "spleen"}], normalisation={"CT": {"scheme": "zscore_per_volume"}}))
    with pytest.raises(UnimosError, match="normalises intensities otherwise"):
        check_coarse_model(renormalised, plan, "coarse_run/checkpoint_final")


def test_a_missing_coarse_model_is_refused_before_the_teacher_trains(tiny_manifest, tmp_path):
    manifest = load_manifest(tiny_manifest)
    plan = tiny_training_plan(manifest)
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    config = TrainConfig(strategy="self_training", iterations=3, checkpoint_every=0, device="cpu",
                         strategy_options={"coarse": str(tmp_path / "no_such_run" / "checkpoint_final")})
    with pytest.raises(UnimosError, match="no_such_run"):
        run_self_training(open_cache(tmp_path / "cache", plan), plan, config, tmp_path / "run")
    assert not (tmp_path / "run" / "round_0").exists()


def test_the_training_loop_refuses_self_training_outside_its_pipeline(tmp_path):
    from unimos.training.loop import train

    with pytest.raises(UnimosError, match="trains several times"):
        train([], {"patch_size": [8, 8, 8]}, TrainConfig(strategy="self_training"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
