"""bench/demo_class_ceiling.py: the complete labels with one class kept only in some training sources."""

import nibabel as nib
import numpy as np

from tests.bench.scripts import load_bench_script

LABELS = {1: "liver", 2: "gallbladder", 3: "spleen"}


def _source(name, folder, split="train"):
    array = np.array([[[0, 1, 2, 3]]], dtype=np.uint8)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(folder / f"{name}.nii.gz"))
    return {"name": name, "modality": "CT", "kind": "full", "labels": dict(LABELS),
            "cases": [{"id": f"{name}_0", "image": f"images/{name}.nii.gz", "label": f"{name}.nii.gz", "split": split}]}


def test_scarce_sources_remove_the_class_outside_the_kept_sources_and_the_test_cases(tmp_path):
    bench = load_bench_script("demo_class_ceiling")
    data = tmp_path / "data"
    data.mkdir()
    sources = [_source("lits", data), _source("btcv", data), _source("test", data, split="test")]
    out = bench.scarce_sources(sources, "gallbladder", {"btcv"}, data, tmp_path / "scarce")
    lits, btcv, test = out
    assert lits["kind"] == "partial" and lits["labels"] == {1: "liver", 3: "spleen"}
    assert np.asarray(nib.load(lits["cases"][0]["label"]).dataobj).ravel().tolist() == [0, 1, 0, 3]
    assert lits["cases"][0]["label"].startswith(str(tmp_path / "scarce"))
    for kept in (btcv, test):  # a kept source and the test cases: the complete labels, unchanged
        assert kept["kind"] == "full" and kept["labels"] == LABELS
        assert kept["cases"][0]["label"] == str(data / f"{kept['name']}.nii.gz")
    # the inputs are only read: the parsed sources and the label files stay as they were
    assert sources[0]["kind"] == "full" and sources[0]["cases"][0]["label"] == "lits.nii.gz"
    assert np.asarray(nib.load(data / "lits.nii.gz").dataobj).ravel().tolist() == [0, 1, 2, 3]
