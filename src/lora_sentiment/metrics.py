"""Evaluation metrics with scikit-learn and scipy (hub-loaded `evaluate` metrics fail offline), for each
problem type: single-label, multi-label (with per-tag decision thresholds) and regression."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    roc_auc_score,
)

from .problem import LabelSpace

LOWER_IS_BETTER = {"loss", "mae", "rmse", "hamming_loss"}
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def evaluation_metrics(space: LabelSpace, labels: np.ndarray, scores: np.ndarray, *, detailed: bool) -> dict[str, Any]:
    """The run's metrics for `scores` (LabelSpace.scores of the logits). `detailed` adds the per-label table and
    the confusion matrix, which the final report keeps but the per-epoch log does not."""
    if space.problem_type == "multi-label":
        return multilabel_metrics(labels, scores, space.decision_thresholds(), space.names, detailed=detailed)
    if space.problem_type == "regression":
        return regression_metrics(labels, scores)
    metrics = classification_metrics(labels, scores, with_confusion=detailed)
    if detailed:
        metrics["per_label"] = per_label_table(labels, scores.argmax(axis=-1), space.names)
    return metrics


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, *, with_confusion: bool = True
) -> dict[str, Any]:
    """accuracy, precision, recall, F1 (binary on class 1, macro for 3+ classes), macro F1, ROC-AUC (binary),
    confusion matrix."""
    labels = np.asarray(labels)
    num_labels = probabilities.shape[-1]
    predictions = probabilities.argmax(axis=-1)
    binary = num_labels == 2
    classes = list(range(num_labels))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels,
        predictions,
        average="binary" if binary else "macro",
        labels=None if binary else classes,
        zero_division=0,
    )
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "f1_macro": float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)),
    }
    if binary:
        # ROC-AUC is undefined when the evaluated rows hold a single class.
        single_class = len(np.unique(labels)) != 2
        metrics["roc_auc"] = float("nan") if single_class else float(roc_auc_score(labels, probabilities[:, 1]))
    if with_confusion:
        metrics["confusion_matrix"] = confusion_matrix(labels, predictions, labels=classes).tolist()
    return metrics


def per_label_table(labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (single-label ids) or tag (multi-label 0/1 columns)."""
    multi = np.asarray(labels).ndim == 2
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, average=None, labels=None if multi else list(range(len(names))), zero_division=0
    )
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support)
    }


def multilabel_metrics(
    labels: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray, names: list[str], *, detailed: bool
) -> dict[str, Any]:
    labels = np.asarray(labels).astype(int)
    predictions = (probabilities >= thresholds).astype(int)
    metrics: dict[str, Any] = {
        "f1_micro": float(f1_score(labels, predictions, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predictions)),  # subset accuracy: every tag right
        "hamming_loss": float(hamming_loss(labels, predictions)),
    }
    if detailed:
        table = per_label_table(labels, predictions, names)
        for name, threshold in zip(names, thresholds):
            table[name]["threshold"] = float(threshold)
        metrics["per_label"] = table
    return metrics


def tune_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per tag, the threshold on THRESHOLD_GRID with the best F1 on these rows (ties: the lowest)."""
    labels = np.asarray(labels).astype(bool)[:, :, None]
    predicted = probabilities[:, :, None] >= THRESHOLD_GRID[None, None, :]
    tp = (predicted & labels).sum(axis=0)
    fp = (predicted & ~labels).sum(axis=0)
    fn = (~predicted & labels).sum(axis=0)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return THRESHOLD_GRID[f1.argmax(axis=1)]


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    with warnings.catch_warnings():  # constant predictions (an untrained head) have no correlation: NaN
        warnings.simplefilter("ignore")
        pearson = stats.pearsonr(targets, predictions)[0] if len(targets) > 1 else float("nan")
        spearman = stats.spearmanr(targets, predictions)[0] if len(targets) > 1 else float("nan")
    return {
        "mae": float(mean_absolute_error(targets, predictions)),
        "rmse": float(np.sqrt(np.mean((targets - predictions) ** 2))),
        "pearson": float(pearson),
        "spearman": float(spearman),
    }
