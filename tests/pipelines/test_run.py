"""train_and_score on a collection of two modalities: each test case is read with its own modality's normalisation."""

import json

import numpy as np

from tests.conftest import tiny_case, tiny_training_plan, write_manifest, write_nifti


def _ct_mr_manifest(tmp_path):
    cases = {"CT": [], "MR": []}
    for modality in cases:
        for i, split in enumerate(["train", "train", "test"]):
            image, label = tiny_case(tmp_path, f"{modality.lower()}_{i}", seed=i)
            if modality == "MR":  # MR-like: no negative values, no Hounsfield scale
                import nibabel as nib

                source = nib.load(str(image))
                write_nifti(image, (np.asanyarray(source.dataobj).astype(np.int16) + 1000) // 3, source.affine)
            cases[modality].append({"id": f"{modality.lower()}_{i}", "image": str(image), "label": str(label),
                                    "split": split})
    return write_manifest(tmp_path, {
        "project": {"name": "ct-mr", "classes": ["liver"]},
        "sources": [{"name": f"{m.lower()}_src", "modality": m, "kind": "full", "labels": {1: "liver"},
                     "cases": cases[m]} for m in cases]})


def test_test_images_are_grouped_by_the_modality_their_source_declares(tmp_path):
    from unimos.data.manifest import load_manifest
    from unimos.pipelines.run import images_by_modality

    groups = images_by_modality(load_manifest(_ct_mr_manifest(tmp_path)), "test")
    assert list(groups) == ["CT", "MR"]
    assert [p.name for p in groups["CT"]] == ["ct_2_0000.nii.gz"]
    assert [p.name for p in groups["MR"]] == ["mr_2_0000.nii.gz"]


def test_a_ct_and_mr_model_is_scored_on_both_modalities_without_a_modality_option(tmp_path):
    from unimos.data.manifest import load_manifest
    from unimos.pipelines.run import train_and_score
    from unimos.preprocess.cache import preprocess_manifest
    from unimos.training.config import TrainConfig

    manifest = load_manifest(_ct_mr_manifest(tmp_path))
    plan = tiny_training_plan(manifest)
    preprocess_manifest(manifest, plan, tmp_path / "cache", workers=1)
    config = TrainConfig(iterations=2, checkpoint_every=0, device="cpu", threads=1, augment=False)
    summary, _seconds = train_and_score("row", tmp_path / "cache", plan, manifest, config, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "predictions" / "row").glob("*.nii.gz")) == [
        "ct_2.nii.gz", "mr_2.nii.gz"]
    assert summary["per_modality"]["CT"]["cases"] == 1 and summary["per_modality"]["MR"]["cases"] == 1
    assert json.loads((tmp_path / "out" / "evaluation" / "row" / "summary.json").read_text())["n_cases"] == 2
