"""The plain baseline: TF-IDF (word 1-2 grams) and a linear model, fitted in seconds on the same training split
and scored on the same evaluation split with the same metrics, so every result shows what the transformer buys.

Logistic regression for single-label, one-vs-rest logistic regression with per-tag thresholds (tuned on the
evaluation split, as for the transformer) for multi-label, ridge regression for numbers."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline

from ..data.encoding import clean_text
from ..errors import first_line
from ..problems.intervals import metric_intervals
from ..problems.metrics import evaluation_metrics
from ..problems.space import LabelSpace


def baseline_name(space: LabelSpace) -> str:
    return f"TF-IDF + {space.problem.baseline_label}"


def fit_baseline(
    texts: Sequence[str], labels: np.ndarray, space: LabelSpace, *, seed: int = 0, sample_weight: Any = None
) -> Pipeline:
    pipeline = make_pipeline(_vectorizer(len(texts)), space.problem.baseline_model(seed))
    fit = {} if sample_weight is None else {f"{pipeline.steps[-1][0]}__sample_weight": sample_weight}
    with warnings.catch_warnings():
        # A tag on none of these texts (a rare one, or an audit fold without it): one-vs-rest predicts it constant,
        # as it should, and warned once a tag in its own words ("Label not 12 ..."); `train` names such tags itself.
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples", category=UserWarning)
        pipeline.fit([clean_text(t) for t in texts], space.problem.baseline_targets(labels), **fit)
    return pipeline


def _vectorizer(texts: int) -> TfidfVectorizer:
    min_df = 2 if texts >= 100 else 1  # a word seen twice is signal; tiny training sets keep every word
    return TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, max_features=200_000, sublinear_tf=True)


def no_words_to_learn(texts: Sequence[str]) -> str | None:
    """Why TF-IDF has nothing to learn from in `texts` (e.g. emoji or punctuation only), or None when it has."""
    try:
        _vectorizer(len(texts)).fit([clean_text(t) for t in texts])
    except ValueError as exc:
        return first_line(exc)
    return None


def baseline_scores(pipeline: Pipeline, texts: Sequence[str], space: LabelSpace) -> np.ndarray:
    """Scores shaped like the transformer's: class or tag probabilities, or a one-column value."""
    return space.problem.baseline_scores(pipeline, [clean_text(t) for t in texts], space)


def evaluate_baseline(
    train: Any, evaluation: Any, space: LabelSpace, *, threshold: float | None = None, seed: int = 0
) -> dict[str, Any]:
    """Fit on the training split, score on the evaluation split (each with `text` and an encoded `label`, as
    data.splits gives them): the run's metrics with their 95 % intervals, plus the fit time."""
    return score_baseline(train, evaluation, space, threshold=threshold, seed=seed).metrics


@dataclass
class BaselineScores:
    metrics: dict[str, Any]
    scores: np.ndarray  # per evaluation text, in the split's order: what the run is compared with, text by text
    space: LabelSpace  # as it decided (multi-label: its own thresholds)
    weighted: bool = False  # fitted with the run's class weights


def score_baseline(
    train: Any, evaluation: Any, space: LabelSpace, *, threshold: float | None = None, seed: int = 0,
    weights: np.ndarray | None = None,
) -> BaselineScores:  # fmt: skip
    train_texts, train_labels = train["text"], np.asarray(train["label"])
    eval_texts, eval_labels = evaluation["text"], np.asarray(evaluation["label"])
    started = time.perf_counter()
    # The run's loss weights (--class-weights), where the problem type says how the linear model takes them
    # (single-label: as sample weights), so the baseline meets the run on the same footing.
    sample = space.problem.baseline_sample_weights(train_labels, weights)
    pipeline = fit_baseline(train_texts, train_labels, space, seed=seed, sample_weight=sample)
    scores = baseline_scores(pipeline, eval_texts, space)
    seconds = time.perf_counter() - started
    space = space.problem.decided(space, eval_labels, scores, threshold)  # as for the transformer
    # detailed: its confusion matrix (or table per tag) beside the run's, and what its headline is, from the same rows
    metrics = evaluation_metrics(space, eval_labels, scores, detailed=True)
    metrics.update(
        model=baseline_name(space), seconds=round(seconds, 3), train_samples=len(train_texts), samples=len(eval_texts),
        intervals=metric_intervals(space, eval_labels, scores),
    )  # fmt: skip
    return BaselineScores(metrics, scores, space, weighted=sample is not None)
