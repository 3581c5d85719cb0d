"""The plain baseline: TF-IDF (word 1-2 grams) and a linear model, fitted in seconds on the same training split
and scored on the same evaluation split with the same metrics, so every result shows what the transformer buys.

Logistic regression for single-label, one-vs-rest logistic regression with per-tag thresholds (tuned on the
evaluation split, as for the transformer) for multi-label, ridge regression for numbers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline

from .data import clean_text
from .metrics import evaluation_metrics, tune_thresholds
from .problem import LabelSpace


def baseline_name(space: LabelSpace) -> str:
    model = {"single-label": "logistic regression", "multi-label": "one-vs-rest logistic regression"}
    return f"TF-IDF + {model.get(space.problem_type, 'ridge regression')}"


def fit_baseline(texts: Sequence[str], labels: np.ndarray, space: LabelSpace, *, seed: int = 0) -> Pipeline:
    min_df = 2 if len(texts) >= 100 else 1  # a word seen twice is signal; tiny training sets keep every word
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, max_features=200_000, sublinear_tf=True)
    if space.problem_type == "regression":
        model: Any = Ridge(alpha=1.0)
    elif space.problem_type == "multi-label":
        model = OneVsRestClassifier(LogisticRegression(max_iter=1000, C=4.0, random_state=seed))
    else:
        model = LogisticRegression(max_iter=1000, C=4.0, random_state=seed)
    pipeline = make_pipeline(vectorizer, model)
    pipeline.fit([clean_text(t) for t in texts], _fit_targets(labels, space))
    return pipeline


def _fit_targets(labels: np.ndarray, space: LabelSpace) -> np.ndarray:
    labels = np.asarray(labels)
    if space.problem_type == "multi-label":
        return labels.astype(int)
    return labels.astype(float) if space.problem_type == "regression" else labels.astype(int)


def baseline_scores(pipeline: Pipeline, texts: Sequence[str], space: LabelSpace) -> np.ndarray:
    """Scores shaped like the transformer's: class or tag probabilities, or a one-column value."""
    cleaned = [clean_text(t) for t in texts]
    if space.problem_type == "regression":
        return pipeline.predict(cleaned).reshape(-1, 1)
    probabilities = pipeline.predict_proba(cleaned)
    if space.problem_type == "single-label":  # classes absent from the training split get probability 0
        full = np.zeros((len(cleaned), len(space.names)))
        full[:, pipeline[-1].classes_.astype(int)] = probabilities
        return full
    return probabilities


def evaluate_baseline(
    train_texts: Sequence[str],
    train_labels: np.ndarray,
    eval_texts: Sequence[str],
    eval_labels: np.ndarray,
    space: LabelSpace,
    *,
    threshold: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit on the training split, score on the evaluation split: the run's metrics, plus the fit time."""
    started = time.perf_counter()
    pipeline = fit_baseline(train_texts, train_labels, space, seed=seed)
    scores = baseline_scores(pipeline, eval_texts, space)
    seconds = time.perf_counter() - started
    if space.problem_type == "multi-label":
        chosen = [threshold] * len(space.names) if threshold is not None else tune_thresholds(eval_labels, scores)
        space = LabelSpace("multi-label", space.names, list(map(float, chosen)))
    metrics = evaluation_metrics(space, np.asarray(eval_labels), scores, detailed=False)
    metrics.update(
        model=baseline_name(space), seconds=round(seconds, 3), train_samples=len(train_texts), samples=len(eval_texts)
    )
    return metrics
