"""The plan's schema: a plan is checked once when read, every wrong field named at once; hand-added fields stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unimos.data.plan_spec import MODEL_KEYS, PREPROCESSING_KEYS, ModelPlan, Plan, plan_problems
from unimos.data.taxonomy import abdominal_taxonomy
from unimos.errors import PlanError
from unimos.preprocess.plan import load_plan, make_plan

FINGERPRINT = {"median_spacing_mm": [0.8, 0.8, 5.0], "spacing_percentile_10_mm": [0.7, 0.7, 2.5],
               "median_extent_mm": [300.0, 300.0, 200.0],
               "modalities": {"CT": {"percentile_00_5": -200.0, "percentile_99_5": 250.0, "mean": 60.0, "std": 70.0},
                              "MR": {}}}


@pytest.fixture
def plan() -> Plan:
    return make_plan(FINGERPRINT, abdominal_taxonomy(["liver", "spleen"]), "3mm")


def test_a_plan_that_make_plan_wrote_has_no_problems(plan):
    assert plan_problems(plan.to_json()) == []


def test_every_wrong_field_is_named_at_once(plan):
    broken = {**plan.to_json(), "target_spacing_mm": [0.0, 3.0, 3.0], "normalisation": {"CT": {"scheme": "minmax"}}}
    del broken["patch_size"]
    problems = plan_problems(broken)
    assert len(problems) == 3
    assert [p.split(":")[0] for p in problems] == ["target_spacing_mm", "patch_size", "normalisation.CT.scheme"]


def test_a_plan_that_is_not_a_json_object_is_one_problem():
    assert plan_problems([1, 2, 3]) == ["is a JSON list, not an object of plan fields"]


def test_load_plan_refuses_a_wrong_field_with_its_name_and_keeps_hand_added_fields(plan, tmp_path: Path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({**plan.to_json(), "batch_size": 0}))
    with pytest.raises(PlanError, match="batch_size: Input should be greater than or equal to 1"):
        load_plan(path)
    path.write_text(json.dumps({**plan.to_json(), "note": "tuned by hand"}))
    assert load_plan(path).model_extra == {"note": "tuned by hand"}
    assert load_plan(path).to_json()["note"] == "tuned by hand"


def test_the_model_and_cache_keys_are_fields_of_the_plan(plan):
    assert set(MODEL_KEYS) <= set(Plan.model_fields) and set(PREPROCESSING_KEYS) <= set(Plan.model_fields)
    assert set(MODEL_KEYS) <= set(plan.to_json()) and set(PREPROCESSING_KEYS) <= set(plan.to_json())


def test_a_checkpoint_keeps_the_model_keys_and_reads_them_back_as_a_model_plan(plan):
    record = plan.model_record()
    assert list(record) == [*MODEL_KEYS, "cache_key", "hash"]
    kept = ModelPlan.model_validate(json.loads(json.dumps(record)))
    assert kept.to_json() == record and kept.patch_size == plan.patch_size
    assert kept.normalisation["CT"].clip == plan.normalisation["CT"].clip
