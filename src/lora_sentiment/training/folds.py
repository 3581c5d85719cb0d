"""`train --folds K`: the recipe's scores by k-fold cross-validation of the training split, for data too small
for its evaluation split to say much (16 texts leave 3 to evaluate on: any accuracy there spans half the scale).

Each text is scored by a real run of the same settings trained on the other folds (cross_fitting.py, which the
audit uses the same way), so all n training texts are scored out of sample instead of the few held out; the
TF-IDF baseline is cross-validated on the same folds and compared text by text. The kept model is trained as
without --folds: these scores describe the recipe on this data, not that one model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..errors import UserError
from ..problems.intervals import metric_intervals, paired_comparison
from ..problems.metrics import evaluation_metrics
from ..problems.space import LabelSpace
from .cross_fitting import (
    FoldJob,
    assign_folds,
    check_fold_count,
    cross_fitted_scores,
    quiet,
    tfidf_sample_weights,
    write_evaluation,
)

Log = Callable[[str], None]


def check_folds(config: TrainConfig, labels: np.ndarray, space: LabelSpace) -> None:
    """Settings that make cross-validation impossible, refused before any training."""
    if config.folds is not None:
        check_fold_count(config.folds, labels, space)


def cross_validate(
    config: TrainConfig, splits: tuple[Any, Any], space: LabelSpace, folder: Path, fit: Callable[..., Any], log: Log
) -> dict:
    """{folds, samples, metrics with intervals, the baseline's, their paired comparison}. `splits`: the training
    and evaluation datasets; `fit`: recipe.train; `folder` keeps each finished fold, so a resumed run does not
    train it again."""
    train, evaluation = splits
    k = int(config.folds or 0)
    labels = np.asarray(train["label"])
    fold = assign_folds(labels, space, k, config.seed)
    log(f"Cross-validation: {k} runs, each on {k - 1} of {k} folds of the {len(labels)} training texts, scoring "
        "the fold it did not see (--folds).")  # fmt: skip
    runs = config.model_copy(update={"folds": None})
    job = FoldJob(train, evaluation, space, runs, folder / "lora", "lora", fit=fit)
    write_evaluation(job)
    scores, seconds = cross_fitted_scores(job, fold, lambda message: log("  " + message))
    record: dict[str, Any] = {"folds": k, "samples": len(labels), **_scores(space, labels, scores),
                              "seconds": round(sum(seconds.values()), 1)}  # fmt: skip
    if config.baseline != "none":
        try:
            baseline = FoldJob(train, None, space, runs, folder / "tfidf", "tfidf")
            theirs, _ = cross_fitted_scores(baseline, fold, quiet)
        except UserError:  # nothing for TF-IDF to learn in some fold: the run's own scores stand alone
            return record
        weighted = any(tfidf_sample_weights(baseline, labels[fold != index]) is not None for index in range(k))
        record["baseline"] = {**_scores(space, labels, theirs), "weighted": weighted}
        record["comparison"] = paired_comparison(space, labels, scores, theirs)
    return record


def _scores(space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    metrics = evaluation_metrics(space, labels, scores, detailed=True)  # the confusion matrix: which headline
    return {**metrics, "intervals": metric_intervals(space, labels, scores), "samples": len(labels)}
