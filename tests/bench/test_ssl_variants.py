"""The SSL ceiling row's data: the comparison's cases, each with its complete labels, the labeled split untouched."""

from pathlib import Path

import pytest

from tests.bench.scripts import load_bench_script
from unimos.data.demo import make_demo_data
from unimos.data.manifest import load_manifest
from unimos.workflow import SSL_SOURCES, write_source_subset


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("ssl_variants")


def test_ceiling_manifest_labels_every_case_of_the_comparison_with_the_complete_labels(bench, tmp_path: Path):
    data = tmp_path / "data"
    make_demo_data(data, seed=0, quick=True)
    comparison = load_manifest(write_source_subset(data / "manifest.yaml", SSL_SOURCES, data / "ssl.yaml"))
    before = (data / "manifest_complete.yaml").read_bytes()

    ceiling = load_manifest(bench.complete_label_manifest(data))

    assert (data / "manifest_complete.yaml").read_bytes() == before
    cases = {c.case_id: c for c in ceiling.cases}
    assert set(cases) == {c.case_id for c in comparison.cases}
    unlabeled = [c for c in comparison.split("train") if c.label_path is None]
    assert unlabeled, "the comparison has an unlabeled source"
    every_organ = frozenset(ceiling.taxonomy.names[1:])
    for case in ceiling.cases:
        assert case.label_path is not None and case.kind == "full", case.case_id
        assert case.annotated_classes == every_organ, case.case_id
    for case in comparison.cases:
        assert cases[case.case_id].split == case.split, case.case_id
        assert cases[case.case_id].image_paths == case.image_paths, case.case_id
