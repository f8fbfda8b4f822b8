"""Voxel confusion matrix of predictions against reference labels: which class a row's errors go to.

    .venv/bin/python bench/confusion.py /work/acdc_ssl/predictions/ssl3_guided_cps ../shared/data/acdc/labelsTr

Every `CASE.nii.gz` of PREDICTIONS whose reference `REFERENCES/CASE.nii.gz` exists is counted (same grid required);
rows are reference classes, columns predicted classes, in voxels, summed over the cases. Said by class value; the
names come from PREDICTIONS/labels.json when it is there. A Dice score says how much is wrong; this says where it
went (e.g. background predicted as myocardium far from the heart, or myocardium predicted as blood pool).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def confusion(predictions: Path, references: Path) -> tuple[np.ndarray, list[str]]:
    """(K, K) voxel counts summed over the cases both folders hold, and the case ids counted."""
    counts: dict[tuple[int, int], int] = {}
    cases = []
    for path in sorted(predictions.glob("*.nii.gz")):
        reference = references / path.name
        if not reference.exists():
            continue
        truth = np.asarray(nib.load(reference).dataobj).astype(np.int64)
        predicted = np.asarray(nib.load(path).dataobj).astype(np.int64)
        if truth.shape != predicted.shape:
            raise ValueError(f"{path}: shape {predicted.shape} differs from its reference's {truth.shape}")
        pairs, n = np.unique(np.stack([truth.ravel(), predicted.ravel()]), axis=1, return_counts=True)
        for (t, p), c in zip(pairs.T, n):
            counts[(int(t), int(p))] = counts.get((int(t), int(p)), 0) + int(c)
        cases.append(path.name.removesuffix(".nii.gz"))
    size = 1 + max((max(k) for k in counts), default=0)
    matrix = np.zeros((size, size), dtype=np.int64)
    for (t, p), c in counts.items():
        matrix[t, p] = c
    return matrix, cases


def class_names(predictions: Path, size: int) -> list[str]:
    """Names by class value from PREDICTIONS/labels.json ({"value": name}, as `unimos predict` writes it), else the
    values themselves."""
    path = predictions / "labels.json"
    names = [str(v) for v in range(size)]
    if path.exists():
        for value, name in json.loads(path.read_text()).items():
            if str(value).isdigit() and int(value) < size:
                names[int(value)] = str(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, help="folder of CASE.nii.gz predictions")
    parser.add_argument("references", type=Path, help="folder of CASE.nii.gz reference labels")
    args = parser.parse_args(argv)
    matrix, cases = confusion(args.predictions, args.references)
    if not cases:
        print(f"error: {args.predictions}: no CASE.nii.gz with a reference of the same name in {args.references}. "
              "Fix: give the predictions folder and the folder of their labels", file=sys.stderr)
        return 2
    names = class_names(args.predictions, matrix.shape[0])
    print(f"{len(cases)} cases; voxels, rows = reference class, columns = predicted class\n")
    print("| reference \\ predicted | " + " | ".join(names) + " | reference total |")
    print("|---" * (len(names) + 2) + "|")
    for row, name in enumerate(names):
        print(f"| {name} | " + " | ".join(f"{int(c):,}" for c in matrix[row]) + f" | {int(matrix[row].sum()):,} |")
    totals = " | ".join(f"{int(c):,}" for c in matrix.sum(axis=0))
    print(f"| predicted total | {totals} | {int(matrix.sum()):,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
