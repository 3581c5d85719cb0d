"""Evaluation metrics, computed with scikit-learn and scipy (hub-loaded `evaluate` metrics fail offline) by each
problem type (single_label.py, multi_label.py, regression.py); this module asks the right one."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import per_label_table, problem_types
from .multi_label import THRESHOLD_GRID, tune_thresholds
from .regression import regression_metrics
from .single_label import classification_metrics
from .space import LabelSpace

__all__ = [
    "LOWER_IS_BETTER", "THRESHOLD_GRID", "classification_metrics", "evaluation_metrics", "lower_is_better",
    "per_label_table", "regression_metrics", "tune_thresholds",
]  # fmt: skip

LOWER_IS_BETTER = frozenset({"loss"}.union(*(p.lower_is_better for p in problem_types())))


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def all_metric_names() -> list[str]:
    """Every metric some problem type computes, the loss first: what --metric-for-best-model may name."""
    return list(dict.fromkeys(["loss", *(m for p in problem_types() for m in (*p.metrics, *p.selection_metrics))]))


def evaluation_metrics(space: LabelSpace, labels: np.ndarray, scores: np.ndarray, *, detailed: bool) -> dict[str, Any]:
    """The run's metrics for `scores` (LabelSpace.scores of the logits). `detailed` adds the per-label table and
    the confusion matrix, which the final report keeps but the per-epoch log does not."""
    return space.problem.evaluate(space, labels, scores, detailed=detailed)
