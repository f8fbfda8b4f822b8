"""bench/acdc_seeds.py: the ssl rows of several acdc.py folders side by side, one column per seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.scripts import load_bench_script

acdc_seeds = load_bench_script("acdc_seeds")


def _folder(root: Path, seed: int, rows: dict[str, float], iterations: int = 3000) -> Path:
    out = root / f"seed_{seed}"
    out.mkdir()
    (out / "acdc_meta.json").write_text(json.dumps({"seed": seed}))
    results = {row: {"experiment": "ssl", "iterations": iterations, "schedule": "default",
                     "table": {"mean": {"dsc": dsc}}} for row, dsc in rows.items()}
    results["partial"] = {"experiment": "partial", "iterations": 2500, "schedule": "default",
                          "table": {"mean": {"dsc": 0.5}}}
    (out / "acdc_results.json").write_text(json.dumps(results))
    return out


def test_rows_are_grouped_by_labeled_count_with_each_seed_and_their_mean(tmp_path: Path):
    outs = [_folder(tmp_path, 0, {"ssl3_supervised": 0.60, "ssl3_unimatch": 0.80, "ssl7_supervised": 0.80}),
            _folder(tmp_path, 1, {"ssl3_supervised": 0.50, "ssl3_unimatch": 0.80})]
    table = acdc_seeds.seed_table(acdc_seeds.read_runs(outs))
    assert table["3"]["supervised"] == {"seeds": {"0": 0.60, "1": 0.50}, "mean": pytest.approx(0.55)}
    assert table["3"]["unimatch"]["mean"] == pytest.approx(0.80)
    assert table["7"] == {"supervised": {"seeds": {"0": 0.80}, "mean": pytest.approx(0.80)}}
    text = acdc_seeds.markdown(table, [0, 1])
    assert "| unimatch | 0.800 | 0.800 | 0.800 | +0.250 (2 seeds) |" in text  # (0.20 + 0.30) / 2
    assert "| supervised | 0.800 | - | 0.800 |  |" in text


def test_a_row_trained_for_other_iterations_on_another_seed_is_refused(tmp_path: Path):
    outs = [_folder(tmp_path, 0, {"ssl3_supervised": 0.6}), _folder(tmp_path, 1, {"ssl3_supervised": 0.5}, 600)]
    with pytest.raises(SystemExit, match="same --budget"):
        acdc_seeds.seed_table(acdc_seeds.read_runs(outs))
