"""The throughput benchmark's pure helpers: step summaries, MONAI crop ratios, intensity factors, goal verdicts."""


import pytest

from tests.bench.scripts import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("throughput")


def test_steps_per_second_is_steps_over_total_time_and_wait_share_is_summed(bench):
    times = bench.StepTimes(wait=[0.1, 0.3, 0.2], total=[1.0, 2.0, 1.0])
    summary = bench.summarise_steps(times)
    assert summary["steps_per_s"] == pytest.approx(3 / 4.0)
    assert summary["data_wait_share"] == pytest.approx(0.6 / 4.0)
    assert summary["median_step_ms"] == pytest.approx(1000.0)
    assert summary["median_wait_ms"] == pytest.approx(200.0)
    assert summary["steps"] == 3


def test_no_measured_steps_is_an_error(bench):
    with pytest.raises(ValueError, match="no measured steps"):
        bench.summarise_steps(bench.StepTimes())


def test_class_centred_crop_never_picks_background_and_weighs_every_label_value_alike(bench):
    assert bench.foreground_ratios(4) == [0.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        bench.foreground_ratios(1)


def test_multiplier_range_becomes_monai_factor_range(bench):
    assert bench._factor_range((0.75, 1.25)) == pytest.approx((-0.25, 0.25))


def test_goals_compare_unimos_with_the_monai_row_of_the_same_workers(bench):
    def row(key, steps_per_s, share):
        return bench.Row(key, key, 0, {"steps_per_s": steps_per_s, "data_wait_share": share}, None)

    rows = {"unimos": row("unimos", 1.0, 0.05), "monai": row("monai", 0.4, 0.5),
            "monai_2_workers": row("monai_2_workers", 0.8, 0.1)}
    result = bench.verdicts(rows)
    assert result["ratio_steps_per_s"] == pytest.approx({"monai": 2.5, "monai_2_workers": 1.25})
    assert result["goal_data_wait_below_10pct"] is True
    assert result["goal_2x_monai_same_workers"] is True
    rows["unimos"] = row("unimos", 0.7, 0.12)
    result = bench.verdicts(rows)
    assert result["goal_data_wait_below_10pct"] is False
    assert result["goal_2x_monai_same_workers"] is False
