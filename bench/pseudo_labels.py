"""How good a self-training round's pseudo-labels are: Dice per organ of each pseudo-labeled case against the
complete labels the demo generator kept, both on the run's cache grid.

    .venv/bin/python bench/pseudo_labels.py RUN/round_1/pseudo_cache OUT/cache_complete

RUN is a `self_training` run (e.g. OUT/runs/self_training of `bench/ssl_variants.py`); OUT/cache_complete the
complete-label cache made with the same plan (ssl_variants.py's `all_labeled` row writes it). Prints one row per
case and the mean per organ; nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def dice_per_class(pseudo: np.ndarray, truth: np.ndarray, classes: int) -> list[float]:
    """Dice of every class 1..classes-1 (1.0 where both are empty)."""
    scores = []
    for value in range(1, classes):
        a, b = pseudo == value, truth == value
        total = int(a.sum() + b.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((a & b).sum()) / total)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pseudo_cache", type=Path)
    parser.add_argument("complete_cache", type=Path, help="the complete-label cache (its plan-key folder or above)")
    args = parser.parse_args()
    from unimos.preprocess.plan import load_plan

    plan = load_plan(args.pseudo_cache.parent / "plan.json")
    organs = [c.name for c in plan.classes]
    rows = {}
    for case in sorted(p for p in args.pseudo_cache.iterdir() if p.is_dir()):
        truth = next(iter(sorted(args.complete_cache.glob(f"**/{case.name}/label.npy"))), None)
        if truth is None:
            continue
        rows[case.name] = dice_per_class(np.load(case / "label.npy"), np.load(truth), len(organs) + 1)
    print("Dice of the pseudo-labels against the complete labels (0-1)")
    print(f"{'case':18s} " + " ".join(f"{o[:7]:>7s}" for o in organs) + "    mean")
    for name, scores in rows.items():
        print(f"{name:18s} " + " ".join(f"{s:7.3f}" for s in scores) + f" {np.mean(scores):7.3f}")
    if rows:
        mean = np.mean(list(rows.values()), axis=0)
        print(f"{'mean':18s} " + " ".join(f"{s:7.3f}" for s in mean) + f" {mean.mean():7.3f}")


if __name__ == "__main__":
    main()
