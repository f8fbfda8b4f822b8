"""The SSL demo's data and its ceiling row: the comparison's cases, each with its complete labels."""

from pathlib import Path

import pytest

from tests.bench.scripts import load_bench_script
from unimos.data.manifest import load_manifest
from unimos.phantoms import SSL_SOURCES, make_demo_data


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("ssl_variants")


def test_ceiling_manifest_labels_every_case_of_the_comparison_with_the_complete_labels(tmp_path: Path):
    data = tmp_path / "data"
    make_demo_data(data, seed=0, quick=True, sources=SSL_SOURCES)
    comparison = load_manifest(data / "manifest.yaml")
    ceiling = load_manifest(data / "manifest_complete.yaml")

    cases = {c.case_id: c for c in ceiling.cases}
    assert set(cases) == {c.case_id for c in comparison.cases}
    unlabeled = [c for c in comparison.split("train") if c.label_path is None]
    assert len(unlabeled) == 4, "quick: 4 unlabeled CTs"
    assert [c.case_id for c in comparison.split("train") if c.label_path is not None] == ["ct_labeled_000"]
    every_organ = frozenset(ceiling.taxonomy.names[1:])
    for case in ceiling.cases:
        assert case.label_path is not None and case.kind == "full", case.case_id
        assert case.annotated_classes == every_organ, case.case_id
    for case in comparison.cases:
        assert cases[case.case_id].split == case.split, case.case_id
        assert cases[case.case_id].image_paths == case.image_paths, case.case_id


def test_with_counts_changes_only_the_labeled_and_unlabeled_training_sources(bench):
    changed = {s.name: s.count for s in bench.with_counts(SSL_SOURCES, 2, 9)}
    assert changed == {"ct_labeled": 2, "ct_unlabeled": 9, "ct_test": 5}
    assert bench.with_counts(SSL_SOURCES, None, None) == SSL_SOURCES
