"""The lesion stage's training crops (pipelines/lesion_crops.py): one per case and parent organ of an annotated
lesion, the organ mask as an extra channel, lesion-only labels, and candidate sets open only for the crop organ's
unannotated lesions. Cases and values are built by hand."""

import json

import numpy as np
import pytest

from unimos.data.taxonomy import ClassDef, Taxonomy
from unimos.errors import UnimosError
from unimos.pipelines.lesion_crops import check_lesion_crops, crop_labels, lesion_crop_cases, lesion_crop_taxonomy
from unimos.preprocess.cache import write_cached_case

# liver 1, kidney_right 2, liver_tumor 3 (in liver), liver_cyst 4 (in liver), kidney_tumor 5 (in kidney_right)
TAXONOMY = Taxonomy((ClassDef("liver"), ClassDef("kidney_right"), ClassDef("liver_tumor", ("liver",)),
                     ClassDef("liver_cyst", ("liver",)), ClassDef("kidney_tumor", ("kidney_right",))))


def _case(folder, case_id, annotated, *, region=None):
    label = np.zeros((30, 30, 30), np.uint8)
    label[5:15, 5:15, 5:15] = 1
    label[8:10, 8:10, 8:10] = 3
    label[20:25, 20:25, 5:10] = 2
    image = np.arange(label.size, dtype=np.float32).reshape(1, *label.shape)
    meta = {"case_id": case_id, "source": "s", "modality": "CT", "kind": "partial", "split": "train",
            "has_label": True, "annotated_classes": annotated, "candidate_table": None, "annotated_slices": None,
            "affine": np.diag([3.0, 3.0, 3.0, 1.0]).tolist(), "shape": list(label.shape)}
    arrays = {"image": image, "label": label, "region": np.ones(label.shape, bool) if region is None else region}
    return write_cached_case(folder / case_id, meta, arrays)


def test_a_group_networks_classes_are_the_organ_and_one_slot_per_lesion_class():
    stage = lesion_crop_taxonomy(2)  # the liver of TAXONOMY: liver_tumor and liver_cyst
    assert stage.names == ["background", "organ", "lesion_1", "lesion_2"]
    assert stage.parents_of(2) == [1] and stage.parents_of(3) == [1]
    assert lesion_crop_taxonomy(1).names == ["background", "organ", "lesion"]


def test_crop_labels_are_the_organ_and_its_lesion_slots_and_the_rest_background():
    # a liver crop (liver 1; its lesions liver_tumor 3, liver_cyst 4); kidney 2 and kidney_tumor 5 are background,
    # and so is a liver_tumor voxel outside this organ (the last one)
    label = np.array([0, 1, 2, 3, 4, 5, 3])
    organ = np.array([False, True, False, True, True, False, False])
    assert crop_labels(label, organ, [3, 4]).tolist() == [0, 1, 0, 2, 3, 0, 0]


def test_a_kidney_crop_holds_its_own_kidneys_tumour_not_the_other_kidneys(tmp_path):
    # kidney_tumor 3 lies in either kidney; this case has one in each
    kidneys = Taxonomy((ClassDef("kidney_right"), ClassDef("kidney_left"),
                        ClassDef("kidney_tumor", ("kidney_right", "kidney_left"))))
    label = np.zeros((30, 12, 12), np.uint8)
    label[2:8, 2:8, 2:8] = 1  # right kidney
    label[4:6, 4:6, 4:6] = 3  # its tumour
    label[20:26, 2:8, 2:8] = 2  # left kidney
    label[22:24, 4:6, 4:6] = 3  # its tumour
    meta = {"case_id": "kits", "source": "s", "modality": "CT", "kind": "partial", "split": "train",
            "has_label": True, "annotated_classes": [1, 2, 3], "candidate_table": None, "annotated_slices": None,
            "affine": np.diag([3.0, 3.0, 3.0, 1.0]).tolist(), "shape": list(label.shape)}
    case = write_cached_case(tmp_path / "cache" / "kits", meta, {
        "image": np.zeros((1, *label.shape), np.float32), "label": label, "region": np.ones(label.shape, bool)})
    crops = lesion_crop_cases([case], kidneys, tmp_path / "crops", (4, 4, 4), margin_mm=3.0)
    assert [c.case_id for c in crops] == ["kits__kidney_right", "kits__kidney_left"]
    # each kidney 6 voxels grown by 1 per side: the right kidney's box does not reach the left kidney's tumour
    assert crops[0].meta["crop_box"] == [[1, 1, 1], [9, 9, 9]]
    assert crops[1].meta["crop_box"] == [[19, 1, 1], [27, 9, 9]]
    for crop in crops:
        crop_label, mask = np.asarray(crop.label()), np.asarray(crop.image())[1]
        assert (crop_label == 2).sum() == 8 and (crop_label == 1).sum() == 6 ** 3 - 8
        assert mask.sum() == 6 ** 3


def test_one_crop_per_organ_whose_lesion_the_case_annotates(tmp_path):
    sparse_region = np.zeros((30, 30, 30), bool)
    sparse_region[:, :, 10] = True
    cases = [_case(tmp_path / "cache", "lits", [1, 2, 3]),  # liver_tumor annotated, kidney_tumor not
             _case(tmp_path / "cache", "organs", [1, 2]),  # no lesion annotated: no crop
             _case(tmp_path / "cache", "sparse", [1, 2, 3], region=sparse_region)]  # not a whole-volume label map
    crops = lesion_crop_cases(cases, TAXONOMY, tmp_path / "crops", (8, 8, 8), margin_mm=3.0)
    assert [c.case_id for c in crops] == ["lits__liver"]
    assert lesion_crop_cases(cases, TAXONOMY, tmp_path / "kidney", (8, 8, 8), 3.0, organs=[2]) == []
    crop = crops[0]
    # liver voxels 5..14 per axis, grown by 3 mm = 1 voxel: 4..15
    assert crop.meta["crop_box"] == [[4, 4, 4], [16, 16, 16]]
    assert crop.meta["affine"][0][3] == 12.0 and crop.meta["shape"] == [12, 12, 12]
    image, label = np.asarray(crop.image()), np.asarray(crop.label())
    assert image.shape == (2, 12, 12, 12)
    original = np.arange(30 ** 3, dtype=np.float32).reshape(30, 30, 30)
    assert np.array_equal(image[0], original[4:16, 4:16, 4:16])
    mask = np.zeros((12, 12, 12), np.float32)
    mask[1:11, 1:11, 1:11] = 1.0  # the liver with its tumour
    assert np.array_equal(image[1], mask)
    expected = np.zeros((12, 12, 12), np.uint8)
    expected[1:11, 1:11, 1:11] = 1  # the liver: organ
    expected[4:6, 4:6, 4:6] = 2  # liver_tumor: the liver's first lesion slot
    assert np.array_equal(label, expected)
    # an organ voxel may be the second slot, liver_cyst (the liver's lesion the case does not annotate)
    table = np.asarray(json.loads((crop.folder / "meta.json").read_text())["candidate_table"], bool)
    assert table.tolist() == [[True, False, False, False], [False, True, False, True],
                              [False, False, True, False], [False, False, False, True]]


def test_a_crop_is_at_least_a_patch_large_and_stays_inside_the_volume(tmp_path):
    cases = [_case(tmp_path / "cache", "lits", [1, 2, 3])]
    crops = lesion_crop_cases(cases, TAXONOMY, tmp_path / "crops", (16, 16, 16), margin_mm=0.0)
    # liver 5..14 (10 voxels) widened about its centre to 16: 2..17
    assert crops[0].meta["crop_box"] == [[2, 2, 2], [18, 18, 18]]


def test_the_lesion_stage_trains_on_crops_and_predicts_with_its_organ_model(tmp_path):
    from tests.conftest import tiny_training_plan
    from tests.pipelines.test_progressive import _tiny_lesion_collection
    from unimos.data.manifest import load_manifest
    from unimos.inference.lesion_stage import load_lesion_stage
    from unimos.inference.model import load_model
    from unimos.inference.predictor import PredictOptions, predict_files
    from unimos.networks.checkpoint import read_checkpoint_meta
    from unimos.pipelines.lesion_crops import run_lesion_crops
    from unimos.preprocess.cache import open_cache, preprocess_manifest
    from unimos.training.config import TrainConfig
    from unimos.training.loop import train

    manifest = load_manifest(_tiny_lesion_collection(tmp_path))
    plan = tiny_training_plan(manifest)
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    cases = open_cache(tmp_path / "cache", plan)
    config = TrainConfig(iterations=2, checkpoint_every=0, device="cpu", seed=1, threads=1, augment=False)
    organs = train(cases, plan, config, tmp_path / "organs")
    stage = run_lesion_crops(cases, plan, TrainConfig(strategy="lesion_crops", iterations=2, checkpoint_every=0,
                                                      device="cpu", seed=1, threads=1, augment=False,
                                                      strategy_options={"patch": 8}), tmp_path / "lesions")
    record = json.loads((tmp_path / "lesions" / "lesion_stage.json").read_text())
    group = record["groups"]["liver_tumor"]
    # full_0, full_1, lits_0 and lits_empty annotate liver_tumor; organs_0 does not, unl_0 has no label
    assert sorted(c["case"] for c in group["crops"]) == ["full_0", "full_1", "lits_0", "lits_empty"]
    assert group["organs"] == ["liver"] and group["lesions"] == ["liver_tumor"] and stage.steps == 2
    meta = read_checkpoint_meta(tmp_path / "lesions" / group["checkpoint"])
    assert [c["name"] for c in meta["classes"]] == ["organ", "lesion"] and meta["in_channels"] == 2
    # --resume reuses the finished group: no step trained, the progress bar still reaches its end
    reported = []
    again = run_lesion_crops(cases, plan, TrainConfig(strategy="lesion_crops", iterations=2, checkpoint_every=0,
                                                      device="cpu", seed=1, threads=1, augment=False,
                                                      strategy_options={"patch": 8}), tmp_path / "lesions",
                             resume=True, progress=lambda done, total, _loss: reported.append((done, total)))
    assert again.steps == 0 and reported == [(2, 2)]

    image = tmp_path / "images" / "full_0_0000.nii.gz"
    records = predict_files(load_model(organs.checkpoint), [image], tmp_path / "pred", PredictOptions(),
                            lesion_stage=load_lesion_stage(tmp_path / "lesions"))
    assert records[0].error is None and (tmp_path / "pred" / "full_0.nii.gz").exists()
    assert "lesions" in records[0].stages


def test_every_lesion_group_without_a_case_to_learn_from_is_named_before_training(tmp_path):
    lits = _case(tmp_path / "cache", "lits", [1, 2, 3])  # the liver with a tumour voxel; kidney_tumor unannotated
    organs = _case(tmp_path / "cache", "organs", [1, 2])
    with pytest.raises(UnimosError, match="annotates a voxel of kidney_tumor with its organ") as caught:
        check_lesion_crops([lits], TAXONOMY)
    assert "liver_tumor" not in str(caught.value)
    with pytest.raises(UnimosError, match="liver_tumor\\+liver_cyst, kidney_tumor"):
        check_lesion_crops([organs], TAXONOMY)
