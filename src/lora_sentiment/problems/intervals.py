"""95 % intervals on a run's headline scores, and whether two models scored on the same texts differ beyond the
noise. The percentile bootstrap over texts (Efron & Tibshirani 1993): ROUNDS resamples of the evaluation texts
with a fixed seed (a run's file is reproducible), each problem type computing its headline metrics for all
resamples at once. A comparison resamples the same texts for both models (the paired bootstrap, as Koehn 2004
for MT systems), so what they share cancels and the interval is on their difference."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .space import LabelSpace

ROUNDS = 1000
OTHER_ROUNDS = 200  # for a metric that is no sum over texts nor a headline one (Pearson), computed per resample
SEED = 0
LEVEL = 0.95
_MAX_CELLS = 20_000_000  # resample indices held at once (80 MB): fewer rounds for very large evaluation splits


def resamples(n: int, seed: int = SEED) -> np.ndarray:
    """[rounds, n] indices, each row n texts drawn with replacement."""
    rounds = max(200, min(ROUNDS, _MAX_CELLS // max(n, 1)))
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n), dtype=np.int32 if n < 2**31 else np.int64)


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % interval for a proportion (accuracy) of `successes` in `n`."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def resampled_sums(per_text: np.ndarray, index: np.ndarray) -> np.ndarray:
    """[rounds, k] sums of per-text counts ([n, k]: correct, true positives, ...) over each resample."""
    n = per_text.shape[0]
    return resample_weights(index, n) @ np.asarray(per_text, dtype=np.float64).reshape(n, -1)


def resample_weights(index: np.ndarray, n: int) -> np.ndarray:
    """[rounds, n]: how often each text was drawn in each resample."""
    return np.stack([np.bincount(row, minlength=n) for row in index]).astype(np.float64)


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2tp / (2tp + fp + fn), 0 where there is nothing to count (scikit-learn's zero_division=0)."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=np.float64), where=denominator > 0)


def macro_over_seen(per_column: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """The mean over the last axis of the classes or tags these rows have or were given (tp + fp + fn > 0): one with
    neither has no F1, and counting it as 0 (scikit-learn's macro over every column) read a small split's macro-F1
    low (a rating's 11 values: 0.158 where 0.217 was due); 0 where no column has anything."""
    seen = (tp + fp + fn) > 0
    return (per_column * seen).sum(axis=-1) / np.maximum(seen.sum(axis=-1), 1)


def confusion_counts(truth: np.ndarray, predicted: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per resample and column of 0/1 `truth` / `predicted` ([n, k]): true positives, false positives, false
    negatives, each [rounds, k]."""
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    counts = np.concatenate([truth & predicted, ~truth & predicted, truth & ~predicted], axis=1)
    sums = resampled_sums(counts, index)
    k = truth.shape[1]
    return sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k :]


def _bounds(draws: np.ndarray) -> list[float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return [float(low), float(high)]


def metric_intervals(space: LabelSpace, labels: np.ndarray, scores: np.ndarray, seed: int = SEED) -> dict[str, Any]:
    """{metric: [low, high]} for every metric of the problem type (empty for fewer than 2 texts)."""
    if len(labels) < 2:
        return {}
    draws = space.problem.resampled_metrics(space, np.asarray(labels), np.asarray(scores), resamples(len(labels), seed))
    return {metric: _bounds(values) for metric, values in draws.items() if np.isfinite(values).any()}


def paired_comparison(
    space: LabelSpace, labels: np.ndarray, ours: np.ndarray, theirs: np.ndarray, their_space: LabelSpace | None = None,
    tuned_on: int | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Ours minus theirs on the first headline metric, with its 95 % paired-bootstrap interval, and whether
    that interval leaves out zero (`beyond_noise`). `better` is True/False when beyond the noise. `their_space`:
    theirs as it decides (multi-label: its own thresholds) [ours]. `tuned_on`: both decide by rules tuned on
    these very texts (a multi-label run's and its baseline's thresholds, on the evaluation split): the seed of
    the fifths by which both are decided out of sample instead, as unseen texts will see them."""
    labels = np.asarray(labels)
    if len(labels) < 2:
        return None
    their_space = their_space or space
    problem = space.problem
    metric = problem.headline_metrics(problem.support(labels))[0]
    decided = "as tuned"
    if tuned_on is not None:
        answers = [problem.out_of_sample_decisions(labels, s, tuned_on) for s in (ours, theirs)]
        if answers[0] is not None and answers[1] is not None:
            # Thresholds tuned on the texts they score flatter the model that gains more from tuning, and their
            # bootstrap leaves the tuning's own noise out (measured in docs/problem-types.md).
            ours, theirs = answers  # 0/1 scores: a threshold of 0.5 keeps them as decided
            space = their_space = dataclasses.replace(space, thresholds=[0.5] * len(space.names), calibration=None)
            decided = "out of sample"

    def difference(index: np.ndarray) -> np.ndarray:
        return problem.resampled_metrics(space, labels, ours, index)[metric] - \
            problem.resampled_metrics(their_space, labels, theirs, index)[metric]  # fmt: skip

    point = difference(np.arange(len(labels))[None, :])[0]
    low, high = _bounds(difference(resamples(len(labels), SEED)))
    beyond = bool(low > 0 or high < 0)
    higher_is_better = metric not in problem.lower_is_better
    return {"metric": metric, "difference": float(point), "interval": [low, high], "texts": len(labels),
            "beyond_noise": beyond, "better": bool((point > 0) == higher_is_better) if beyond else None,
            "thresholds": decided}  # fmt: skip


def with_interval(value: float, interval: list[float] | None, n: int | None = None) -> str:
    """`0.8680 (0.8460-0.8880, n = 1000)`."""
    if not interval:
        return f"{value:.4f}"
    count = f", n = {n}" if n else ""
    return f"{value:.4f} ({interval[0]:.4f}-{interval[1]:.4f}{count})"


def comparison_text(comparison: dict[str, Any], ours: str, theirs: str) -> str:
    """One line a user can read the verdict off."""
    low, high = comparison["interval"]
    change = f"{comparison['metric']} {comparison['difference']:+.4f} (95 % interval {low:+.4f} to {high:+.4f})"
    if not comparison["beyond_noise"]:
        verdict = f"within the noise of {comparison['texts']} texts: neither is shown better"
    else:
        verdict = f"{ours} is {'better' if comparison['better'] else 'worse'}, beyond the noise"
    how = ", each fifth's tags decided by thresholds tuned on the other four" if comparison.get(
        "thresholds") == "out of sample" else ""  # fmt: skip
    return f"{ours} vs {theirs} on the same {comparison['texts']} texts{how}: {change}: {verdict} (paired bootstrap)."
