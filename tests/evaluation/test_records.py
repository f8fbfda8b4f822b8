from pathlib import Path

from unimos.evaluation.records import Aggregate, EvaluationResult, StructureRecord


def _result(records: list[StructureRecord]) -> EvaluationResult:
    structures = list(dict.fromkeys(r.structure for r in records))
    per_structure = {s: Aggregate.of(r for r in records if r.structure == s) for s in structures}
    mean = {"dsc": 0.0, "nsd": 0.0, "hd95": 0.0}
    return EvaluationResult(tuple(records), per_structure, {}, {}, {}, mean, "test", 2.0, (), Path("s.csv"),
                            Path("s.json"), Path("s.md"))


def test_each_modality_is_averaged_over_its_own_cases_and_structures():
    nan = float("nan")
    records = [
        StructureRecord("ct1", "btcv", "CT", "liver", 0.9, 0.8, 2.0, "ok"),
        StructureRecord("ct2", "btcv", "CT", "liver", 0.7, 0.6, 4.0, "ok"),
        StructureRecord("ct1", "btcv", "CT", "pancreas", 0.5, 0.4, 10.0, "ok"),
        StructureRecord("mr1", "chaos", "MR", "liver", 0.8, 0.7, 3.0, "ok"),
        StructureRecord("mr1", "chaos", "MR", "pancreas", nan, nan, nan, "both_empty"),
    ]
    summary = _result(records).modality_summary()
    assert list(summary) == ["CT", "MR"]
    ct, mr = summary["CT"], summary["MR"]
    assert ct["cases"] == 2 and ct["structures"] == 2
    assert ct["per_structure"]["liver"]["dsc"] == 0.8  # (0.9 + 0.7) / 2
    assert abs(ct["dsc"] - 0.65) < 1e-12  # mean over structures: (0.8 + 0.5) / 2
    assert abs(ct["hd95"] - 6.5) < 1e-12  # (3.0 + 10.0) / 2
    assert mr["cases"] == 1 and list(mr["per_structure"]) == ["liver"]  # a both-empty structure is not scored
    assert mr["dsc"] == 0.8


def test_summary_md_has_a_column_pair_per_modality_when_there_are_two(tmp_path):
    from unimos.evaluation.outputs import _markdown

    records = [StructureRecord("ct1", "btcv", "CT", "liver", 0.9, 0.8, 2.0, "ok"),
               StructureRecord("mr1", "chaos", "MR", "liver", 0.6, 0.5, 3.0, "ok")]
    text = _markdown(_result(records))
    assert "| structure | CT DSC | CT NSD@2mm | MR DSC | MR NSD@2mm |" in text
    assert "| liver | 0.900 | 0.800 | 0.600 | 0.500 |" in text
    assert "Per modality" not in _markdown(_result(records[:1]))
