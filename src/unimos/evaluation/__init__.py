"""Evaluation: DSC, NSD, HD95 scored only on what the reference annotates."""

from unimos.evaluation.evaluate import Aggregate, EvaluationResult, StructureRecord, evaluate_predictions, score_case
from unimos.evaluation.metrics import ScoringRegion, StructureScore, score_structure

__all__ = ["Aggregate", "EvaluationResult", "ScoringRegion", "StructureRecord", "StructureScore",
           "evaluate_predictions", "score_case", "score_structure"]
