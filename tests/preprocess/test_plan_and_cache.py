import hashlib
import json

import numpy as np
import pytest

from tests.conftest import write_manifest, write_nifti
from unimos.data.manifest import load_manifest
from unimos.errors import PlanError
from unimos.preprocess.cache import open_cache, preprocess_manifest
from unimos.preprocess.fingerprint import collect_fingerprint
from unimos.preprocess.plan import load_plan, make_plan, save_plan


@pytest.fixture
def planned(tiny_manifest, tmp_path):
    manifest = load_manifest(tiny_manifest)
    plan = make_plan(collect_fingerprint(manifest), manifest.taxonomy, "3mm")
    return manifest, plan


def test_plan_is_json_with_a_stable_hash(planned, tmp_path):
    manifest, plan = planned
    assert plan.target_spacing_mm == [3.0, 3.0, 3.0]
    assert all(p % 2 ** (len(plan.network["strides"]) - 1) == 0 for p in plan.patch_size)
    assert plan.normalisation["CT"].scheme == "ct_clip_zscore"
    path = save_plan(plan, tmp_path / "plan.json")
    assert load_plan(path).hash == plan.hash
    edited = json.loads(path.read_text())
    edited["target_spacing_mm"] = [2.0, 2.0, 2.0]
    path.write_text(json.dumps(edited))
    reloaded = load_plan(path)
    assert reloaded.hash != plan.hash and reloaded.cache_key != plan.cache_key


def test_a_plan_file_reads_back_to_the_same_json_bytes_and_hashes(planned, tmp_path):
    """The typed plan is its file: to_json() is the file's JSON (no defaults added, ints kept, hand-added fields
    kept), saving writes the same bytes, and the hashes are those the file holds."""
    _, plan = planned
    path = save_plan(plan, tmp_path / "plan.json")
    written = path.read_text()
    loaded = load_plan(path)
    assert loaded.to_json() == json.loads(written) and list(loaded.to_json()) == list(json.loads(written))
    assert loaded.hash == json.loads(written)["hash"] and loaded.cache_key == json.loads(written)["cache_key"]
    assert save_plan(loaded, tmp_path / "again.json").read_text() == written
    by_hand = {k: v for k, v in json.loads(written).items() if k not in ("crop_to_body", "label_resampling")}
    by_hand.update(target_spacing_mm=[3, 3, 3], note="tuned by hand")
    (tmp_path / "hand.json").write_text(json.dumps(by_hand))
    edited = load_plan(tmp_path / "hand.json").to_json()
    assert {k: v for k, v in edited.items() if k not in ("cache_key", "hash")} == \
        {k: v for k, v in by_hand.items() if k not in ("cache_key", "hash")}
    assert edited["target_spacing_mm"] == [3, 3, 3] and isinstance(edited["target_spacing_mm"][0], int)
    assert "crop_to_body" not in edited and load_plan(tmp_path / "hand.json").crop_to_body is True
    body = {k: v for k, v in by_hand.items() if k not in ("cache_key", "hash")}  # the hash of the JSON as written
    assert edited["hash"] == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def test_a_fingerprint_without_training_cases_gives_no_plan():
    from unimos.data.taxonomy import abdominal_taxonomy
    fingerprint = {"median_spacing_mm": [1.0, 1.0, 1.0], "spacing_percentile_10_mm": [1.0, 1.0, 1.0],
                   "median_extent_mm": [100.0, 100.0, 100.0], "modalities": {}}
    with pytest.raises(PlanError, match="no modality"):
        make_plan(fingerprint, abdominal_taxonomy(["liver"]), "3mm")


def test_fine_preset_uses_median_spacing_and_caps_a_coarse_axis():
    fingerprint = {"median_spacing_mm": [0.8, 0.8, 5.0], "spacing_percentile_10_mm": [0.7, 0.7, 2.5],
                   "median_extent_mm": [300.0, 300.0, 200.0], "modalities": {"MR": {}}}
    from unimos.data.taxonomy import abdominal_taxonomy
    plan = make_plan(fingerprint, abdominal_taxonomy(["liver"]), "fine")
    assert plan.target_spacing_mm == [0.8, 0.8, 2.5]
    assert int(np.prod(plan.patch_size)) <= 128 ** 3


def test_coarse_preset_is_6mm_with_a_small_network_for_the_first_cascade_stage():
    fingerprint = {"median_spacing_mm": [0.8, 0.8, 5.0], "spacing_percentile_10_mm": [0.7, 0.7, 2.5],
                   "median_extent_mm": [300.0, 300.0, 200.0], "modalities": {"MR": {}}}
    from unimos.data.taxonomy import abdominal_taxonomy
    plan = make_plan(fingerprint, abdominal_taxonomy(["liver"]), "coarse")
    assert plan.target_spacing_mm == [6.0, 6.0, 6.0]
    assert int(np.prod(plan.patch_size)) <= 48 ** 3 and max(plan.network["filters"]) <= 64


def test_broken_plan_file_is_refused_with_a_fix(tmp_path):
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(PlanError, match="Fix"):
        load_plan(tmp_path / "plan.json")
    with pytest.raises(PlanError, match="unimos plan"):
        load_plan(tmp_path / "nope.json")


def test_preprocess_writes_arrays_and_a_second_run_does_nothing(planned, tmp_path):
    manifest, plan = planned
    cache = tmp_path / "cache"
    assert preprocess_manifest(manifest, plan, cache, workers=1) == (5, 0)
    cases = {c.case_id: c for c in open_cache(cache, plan)}
    assert set(cases) == {"full_0", "full_1", "part_0", "part_1", "unl_0"}
    full = cases["full_0"]
    image, label, region = full.image(), full.label(), full.region()
    assert image.shape[0] == 1 and image.shape[1:] == label.shape == region.shape
    assert set(np.unique(label)) == {0, 1, 2} and region.all()
    assert cases["unl_0"].label() is None and cases["unl_0"].meta["annotated_classes"] == []
    assert cases["part_0"].meta["annotated_classes"] == [1]
    # partial: a background voxel may be spleen; a liver voxel is liver
    assert cases["part_0"].candidate_table.tolist() == [[True, False, True], [False, True, False], [False, False, True]]
    mtimes = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    assert preprocess_manifest(manifest, plan, cache, workers=1) == (0, 5)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == mtimes


def test_preprocess_in_parallel_matches_serial(planned, tmp_path):
    manifest, plan = planned
    preprocess_manifest(manifest, plan, tmp_path / "serial", workers=1)
    preprocess_manifest(manifest, plan, tmp_path / "parallel", workers=2)
    for a, b in zip(open_cache(tmp_path / "serial", plan), open_cache(tmp_path / "parallel", plan)):
        assert np.array_equal(a.image(), b.image())


def _sided_manifest(tmp_path, affine):
    shape = (40, 20, 10)
    image = np.full(shape, -1000, dtype=np.int16)
    image[2:38, 2:18, :] = 30
    label = np.zeros(shape, dtype=np.uint8)
    label[5:10, 6:12, 3:7] = 1   # low i
    label[30:35, 6:12, 3:7] = 1  # high i
    write_nifti(tmp_path / "img.nii.gz", image, affine)
    write_nifti(tmp_path / "lab.nii.gz", label, affine)
    return write_manifest(tmp_path, {"project": {"classes": ["kidney_right", "kidney_left"]}, "sources": [
        {"name": "kits_like", "modality": "CT", "labels": {1: "kidney"},
         "cases": [{"id": "k", "image": "img.nii.gz", "label": "lab.nii.gz"}]}]})


@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_merged_kidney_label_is_split_by_side_in_ras_and_lps_input(tmp_path, flip):
    affine = np.diag([3.0 * flip, 3.0 * flip, 3.0, 1.0])
    manifest = load_manifest(_sided_manifest(tmp_path, affine))
    assert manifest.sources[0].kind == "full"
    plan = make_plan(collect_fingerprint(manifest), manifest.taxonomy, "3mm")
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    case = open_cache(tmp_path / "cache", plan)[0]
    label, affine_ras = np.asarray(case.label()), np.asarray(case.meta["affine"])
    for cls, expected_side in ((1, +1), (2, -1)):  # kidney_right sits at larger world x in RAS
        centre = np.argwhere(label == cls).mean(axis=0)
        x = (affine_ras @ np.append(centre, 1.0))[0]
        body_x = (affine_ras @ np.append((np.array(label.shape) - 1) / 2, 1.0))[0]
        assert np.sign(x - body_x) == expected_side


def test_sparse_slices_survive_preprocessing_as_one_slice_each(tmp_path):
    shape = (30, 30, 12)
    affine = np.diag([1.0, 1.0, 5.0, 1.0])  # 5 mm slices -> 3 mm
    image = np.full(shape, 40, dtype=np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    label[10:20, 10:20, :] = 1
    write_nifti(tmp_path / "img.nii.gz", image, affine)
    write_nifti(tmp_path / "lab.nii.gz", label, affine)
    path = write_manifest(tmp_path, {"project": {"classes": ["liver"]}, "sources": [
        {"name": "sparse", "kind": "sparse", "labels": {1: "liver"},
         "cases": [{"id": "s", "image": "img.nii.gz", "label": "lab.nii.gz", "annotated_slices": {2: [2, 7]}}]}]})
    manifest = load_manifest(path)
    plan = make_plan(collect_fingerprint(manifest), manifest.taxonomy, "3mm")
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    case = open_cache(tmp_path / "cache", plan)[0]
    region, label = np.asarray(case.region()), np.asarray(case.label())
    annotated_z = sorted(set(np.argwhere(region)[:, 2]))
    assert len(annotated_z) == 2 and annotated_z == case.meta["annotated_slices"]["2"]
    # each annotated slice lands at the world z of its source slice (within half a target slice)
    z_world = [(np.asarray(case.meta["affine"]) @ np.array([0, 0, k, 1.0]))[2] for k in annotated_z]
    assert np.allclose(z_world, [10.0, 35.0], atol=1.5)
    assert label[~region].max() == 0 and label[region].max() == 1


def test_write_cached_case_shares_the_image_of_another_case_and_replaces_an_earlier_one(tmp_path):
    from unimos.preprocess.cache import CachedCase, write_cached_case

    image = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    original = write_cached_case(tmp_path / "a", {"case_id": "a"}, {"image": image, "label": np.zeros((2, 2, 2),
                                                                                                      np.uint8)})
    assert isinstance(original, CachedCase) and np.array_equal(original.image(), image)
    label = np.ones((2, 2, 2), np.uint8)
    shared = write_cached_case(tmp_path / "b", {"case_id": "b"}, {"label": label}, image_from=original.folder)
    assert np.array_equal(shared.image(), image) and np.array_equal(shared.label(), label)
    assert (tmp_path / "b" / "image.npy").stat().st_ino == (tmp_path / "a" / "image.npy").stat().st_ino  # a link
    again = write_cached_case(tmp_path / "b", {"case_id": "b", "round": 2}, {"label": label * 2},
                              image_from=original.folder)
    assert again.meta["round"] == 2 and int(np.asarray(again.label()).max()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary folder left behind
