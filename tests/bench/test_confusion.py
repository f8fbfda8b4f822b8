"""bench/confusion.py: voxel confusion matrix of predictions against references."""

import json

import numpy as np

from tests.bench.scripts import load_bench_script
from tests.conftest import write_nifti


def test_confusion_counts_reference_rows_against_predicted_columns_over_the_cases_both_folders_hold(tmp_path, capsys):
    bench = load_bench_script("confusion")
    truth = np.array([0, 0, 1, 2, 2], dtype=np.uint8).reshape(5, 1, 1)
    predicted = np.array([0, 2, 1, 2, 0], dtype=np.uint8).reshape(5, 1, 1)
    for case in ("a", "b"):
        write_nifti(tmp_path / "ref" / f"{case}.nii.gz", truth)
        write_nifti(tmp_path / "pred" / f"{case}.nii.gz", predicted)
    write_nifti(tmp_path / "pred" / "no_reference.nii.gz", predicted)
    (tmp_path / "pred" / "labels.json").write_text(json.dumps({"0": "background", "1": "rv", "2": "myo"}))
    matrix, cases = bench.confusion(tmp_path / "pred", tmp_path / "ref")
    # per case: bg->bg 1, bg->myo 1, rv->rv 1, myo->myo 1, myo->bg 1; two cases double every count
    assert cases == ["a", "b"]
    assert matrix.tolist() == [[2, 0, 2], [0, 2, 0], [2, 0, 2]]
    assert bench.main([str(tmp_path / "pred"), str(tmp_path / "ref")]) == 0
    assert "| myo | 2 | 0 | 2 | 4 |" in capsys.readouterr().out
    assert bench.main([str(tmp_path / "ref"), str(tmp_path / "nowhere")]) == 2
