import json

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import tiny_case, write_manifest, write_nifti
from unimos.data.io import read_volume
from unimos.data.labels import to_project_labels
from unimos.data.manifest import load_manifest, parse_manifest_text
from unimos.errors import ManifestError, TaxonomyError, UnimosError


def test_manifest_resolves_sources_cases_and_annotated_classes(tiny_manifest):
    manifest = load_manifest(tiny_manifest)
    assert manifest.taxonomy.names == ["background", "liver", "spleen"]
    assert [s.kind for s in manifest.sources] == ["full", "partial", "unlabeled"]
    part = manifest.cases_of("liver_only")[0]
    assert part.annotated_classes == {"liver"}
    assert part.image_paths[0].is_absolute() and part.image_paths[0].exists()
    assert manifest.cases_of("unlabeled")[0].label_path is None


def test_kind_full_requires_every_project_class(tmp_path):
    img, lab = tiny_case(tmp_path, "a")
    path = write_manifest(tmp_path, {"project": {"classes": ["liver", "spleen"]}, "sources": [
        {"name": "s", "kind": "full", "labels": {1: "liver"},
         "cases": [{"id": "a", "image": str(img), "label": str(lab)}]}]})
    with pytest.raises(ManifestError, match="kind: partial"):
        load_manifest(path)


def test_per_case_annotated_classes_override_the_source(tmp_path):
    img, lab = tiny_case(tmp_path, "a")
    path = write_manifest(tmp_path, {"project": {"classes": ["liver", "spleen"]}, "sources": [
        {"name": "s", "kind": "partial", "labels": {1: "liver", 2: "spleen"},
         "cases": [{"id": "a", "image": str(img), "label": str(lab), "annotated_classes": ["liver"]}]}]})
    assert load_manifest(path).cases[0].annotated_classes == {"liver"}


def test_unknown_label_name_in_a_source_names_the_manifest_and_suggests(tmp_path):
    img, lab = tiny_case(tmp_path, "a")
    path = write_manifest(tmp_path, {"project": {"classes": ["liver"]}, "sources": [
        {"name": "s", "labels": {1: "livver"}, "cases": [{"id": "a", "image": str(img), "label": str(lab)}]}]})
    with pytest.raises(TaxonomyError) as info:
        load_manifest(path)
    assert str(path) in str(info.value) and "'liver'" in str(info.value)


def test_lits_like_tumour_becomes_liver_when_the_project_has_no_liver_tumour_class(tmp_path):
    # a diseased liver: liver 1 in a box, tumour 2 in a smaller box inside it
    img, lab = tiny_case(tmp_path, "lits", labels={1: (slice(4, 12), slice(4, 12), slice(2, 8)),
                                                   2: (slice(6, 9), slice(6, 9), slice(4, 6))})
    img_t, lab_t = tiny_case(tmp_path, "tumour_only", labels={1: (slice(6, 9), slice(6, 9), slice(4, 6))})
    path = write_manifest(tmp_path, {"project": {"classes": ["liver", "spleen"]}, "sources": [
        {"name": "lits_like", "labels": {1: "liver", 2: "tumor"},
         "cases": [{"id": "lits", "image": str(img), "label": str(lab)}]},
        {"name": "tumour_only", "labels": {1: "liver_tumor"},
         "cases": [{"id": "tumour_only", "image": str(img_t), "label": str(lab_t)}]}]})
    manifest = load_manifest(path)
    case, tumour_only = manifest.cases
    labels, region = to_project_labels(case, manifest.taxonomy, read_volume(case.label_path, kind="label"))
    assert labels[7, 7, 5] == 1 and labels[5, 5, 3] == 1  # the tumour and the rest of the liver: both liver
    assert int((labels == 1).sum()) == 8 * 8 * 6 and region.all()
    assert case.annotated_classes == {"liver"} and case.source.kind == "partial"
    # a tumour-only label says its voxels are liver, not where the rest of the liver is
    assert tumour_only.annotated_classes == frozenset()
    labels, _ = to_project_labels(tumour_only, manifest.taxonomy, read_volume(tumour_only.label_path, kind="label"))
    assert int((labels == 1).sum()) == 3 * 3 * 2


def test_a_lesion_class_without_its_organ_names_the_manifest_and_the_fix(tmp_path):
    img, lab = tiny_case(tmp_path, "a")
    path = write_manifest(tmp_path, {"project": {"classes": ["spleen", "pancreas_tumor"]}, "sources": [
        {"name": "s", "labels": {1: "spleen"}, "cases": [{"id": "a", "image": str(img), "label": str(lab)}]}]})
    with pytest.raises(TaxonomyError) as info:
        load_manifest(path)
    assert f"{path} (project.classes)" in str(info.value)
    assert "'pancreas_tumor' lies inside pancreas" in str(info.value)
    assert "add pancreas to the classes" in str(info.value)


def test_sparse_case_must_say_which_slices_are_annotated(tmp_path):
    img, lab = tiny_case(tmp_path, "a")
    source = {"name": "s", "kind": "sparse", "labels": {1: "liver"},
              "cases": [{"id": "a", "image": str(img), "label": str(lab)}]}
    path = write_manifest(tmp_path, {"project": {"classes": ["liver"]}, "sources": [source]})
    with pytest.raises(ManifestError, match="annotated_slices"):
        load_manifest(path)
    source["labels"][255] = "ignore"
    path = write_manifest(tmp_path, {"project": {"classes": ["liver"]}, "sources": [source]})
    assert load_manifest(path).cases[0].kind == "sparse"


def _nnunet_folder(root, *, with_cases_json=False):
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "RV": 1, "MYO": 2, "LV": 3},
        "numTraining": 3, "file_ending": ".nii.gz"}))
    for i in range(3):
        label = np.zeros((8, 8, 4), dtype=np.uint8)
        label[1:3, 1:3, 1] = 1
        label[4:6, 4:6, 2] = 3
        write_nifti(root / "imagesTr" / f"case_{i:03d}_0000.nii.gz",
                    np.random.default_rng(i).random((8, 8, 4)).astype(np.float32))
        write_nifti(root / "labelsTr" / f"case_{i:03d}.nii.gz", label)
    write_nifti(root / "imagesTs" / "case_100_0000.nii.gz", np.zeros((8, 8, 4), dtype=np.float32))
    (root / "splits.json").write_text(json.dumps({"train": ["case_000", "case_001"], "validation": ["case_002"]}))
    if with_cases_json:
        (root / "cases.json").write_text(json.dumps({"case_000": {"annotated_classes": ["RV"]}}))
    return root


def test_nnunet_folder_alone_brings_its_labels_as_classes(tmp_path):
    manifest = load_manifest(_nnunet_folder(tmp_path / "Dataset001_Heart"))
    assert manifest.taxonomy.names == ["background", "right_ventricle", "myocardium", "left_ventricle"]
    assert len(manifest.sources) == 1 and manifest.sources[0].kind == "full"
    assert manifest.sources[0].modality == "MR"
    assert [c.case_id for c in manifest.cases] == ["case_000", "case_001", "case_002"]
    assert [c.split for c in manifest.cases] == ["train", "train", "validation"]
    assert all(c.label_path.exists() for c in manifest.cases)


def test_nnunet_folder_given_as_a_relative_path_is_found(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    _nnunet_folder(tmp_path / "data" / "Dataset001_Heart")
    monkeypatch.chdir(tmp_path)
    manifest = load_manifest("data/Dataset001_Heart")
    assert len(manifest.cases) == 3 and all(c.image_paths[0].exists() for c in manifest.cases)


def test_nnunet_cases_json_makes_per_case_partial_labels(tmp_path):
    manifest = load_manifest(_nnunet_folder(tmp_path / "Dataset002", with_cases_json=True))
    first = manifest.cases[0]
    assert first.kind == "partial" and first.annotated_classes == {"right_ventricle"}
    assert manifest.cases[1].annotated_classes == {"right_ventricle", "myocardium", "left_ventricle"}


def test_manifest_source_may_import_a_folder_into_a_larger_project(tmp_path):
    _nnunet_folder(tmp_path / "heart")
    path = write_manifest(tmp_path, {"project": {"classes": ["LV", "RV", "myocardium", "liver"]},
                                     "sources": [{"name": "acdc", "import": "heart"}]})
    manifest = load_manifest(path)
    assert manifest.sources[0].kind == "partial"  # liver is not named by the folder's labels
    assert manifest.sources[0].annotated_classes == {"left_ventricle", "right_ventricle", "myocardium"}
    assert manifest.cases[0].image_paths[0].exists()


def test_msd_task_folder_is_imported(tmp_path):
    root = tmp_path / "Task09_Spleen"
    root.mkdir()
    write_nifti(root / "imagesTr" / "spleen_1.nii.gz", np.zeros((6, 6, 4), dtype=np.float32))
    label = np.zeros((6, 6, 4), dtype=np.uint8)
    label[2:4, 2:4, 1:3] = 1
    write_nifti(root / "labelsTr" / "spleen_1.nii.gz", label)
    (root / "dataset.json").write_text(json.dumps({
        "name": "Spleen", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "spleen"},
        "training": [{"image": "./imagesTr/spleen_1.nii.gz", "label": "./labelsTr/spleen_1.nii.gz"}], "test": []}))
    manifest = load_manifest(root)
    assert manifest.taxonomy.names == ["background", "spleen"]
    assert manifest.cases[0].case_id == "spleen_1" and manifest.cases[0].modality == "CT"


def test_folder_without_dataset_json_is_refused_with_a_fix(tmp_path):
    with pytest.raises(ManifestError, match="dataset.json"):
        load_manifest(tmp_path)


_scalars = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.booleans())
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(project=_values, sources=_values, extra=st.dictionaries(st.sampled_from(["project", "sources", "cases", "x"]),
                                                                 _values, max_size=2))
def test_fuzzed_manifests_give_validation_errors_never_tracebacks(tmp_path, project, sources, extra):
    text = yaml.safe_dump({"project": project, "sources": sources, **extra})
    path = tmp_path / "m.yaml"
    try:
        spec = parse_manifest_text(text, path)
    except ManifestError as err:
        assert str(path) in str(err) and "Fix" in str(err)
        return
    from unimos.data.manifest import resolve_manifest
    try:
        resolve_manifest(spec, path)
    except UnimosError:
        pass
