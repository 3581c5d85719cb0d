"""Classification metrics with scikit-learn (hub-loaded `evaluate` metrics fail offline)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, *, with_confusion: bool = True
) -> dict[str, Any]:
    """accuracy, precision, recall, F1 (binary on class 1, macro for 3+ classes), ROC-AUC (binary), confusion matrix."""
    labels = np.asarray(labels)
    num_labels = probabilities.shape[-1]
    predictions = probabilities.argmax(axis=-1)
    binary = num_labels == 2
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels,
        predictions,
        average="binary" if binary else "macro",
        labels=None if binary else list(range(num_labels)),
        zero_division=0,
    )
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
    }
    if binary:
        # ROC-AUC is undefined when the evaluated rows hold a single class.
        metrics["roc_auc"] = (
            float(roc_auc_score(labels, probabilities[:, 1])) if len(np.unique(labels)) == 2 else float("nan")
        )
    if with_confusion:
        metrics["confusion_matrix"] = confusion_matrix(labels, predictions, labels=list(range(num_labels))).tolist()
    return metrics
