from __future__ import annotations

import pytest

from unimos.data.plan_spec import Plan
from unimos.data.taxonomy import abdominal_taxonomy
from unimos.preprocess.plan import make_plan


@pytest.fixture
def tiny_plan() -> Plan:
    """A real `3mm` plan for a small fingerprint (no files needed)."""
    fingerprint = {"median_spacing_mm": [1.5, 1.5, 3.0], "spacing_percentile_10_mm": [1.0, 1.0, 2.5],
                   "median_extent_mm": [240.0, 240.0, 150.0], "modalities": {"MR": {}}}
    return make_plan(fingerprint, abdominal_taxonomy(["liver", "spleen"]), "3mm")
