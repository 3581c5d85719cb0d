"""Calibration: outputs whose confidence means what it says, fitted after training on the evaluation split.

- single-label: temperature scaling (Guo et al. 2017), one scalar T dividing the logits, fitted by NLL; the
  argmax, so accuracy, cannot change.
- multi-label: one temperature per tag, fitted by each tag's binary cross-entropy; the tag thresholds are then
  tuned again on the calibrated probabilities.
- regression: split-conformal prediction (Lei et al. 2018): the absolute residual's finite-sample quantile gives an
  interval, prediction ± q, that holds the stated share of true values; where the evaluation split has room for
  it, one q per band of the predicted value (Mondrian conformal, Vovk et al. 2005), each band holding the share
  on its own, so a text whose predicted value is harder to pin down (a middling rating) gets a wider interval and
  `--max-interval` can abstain on it alone.

Model selection used the same split, so the quality figures are cross-fitted: fitted on one half of it and scored
on the other, and back; the saved calibration is then fitted on all of it. Each problem type says how it fits and
how it is judged (its `calibrate`, `calibration_quality`); this module holds the shared pieces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .space import LabelSpace

ECE_BINS = 15  # equal-mass bins: every bin holds as many outputs, so no bin's figure rests on a handful
MIN_TEXTS = 50  # fewer evaluation texts than this: a temperature fitted on them is noise, none is fitted
COVERAGE = 0.9  # regression intervals' nominal share of true values, unless --interval-coverage says otherwise
# Bands of the predicted value for regression intervals: one per BAND_TEXTS evaluation texts at most, so each
# band's 90 % quantile is at least about the 91st of 100 residuals (its own coverage on new texts then varies by
# about ±3 points); tied predictions may leave a band with fewer, down to half. MAX_BANDS: on IMDB ratings (three
# MiniLM runs, cross-fitted on halves of 500) 3 bands gave intervals a fifth narrower than one width (mean
# half-width 3.01-3.15 vs 3.79-3.94) at 90-91 % coverage, 5 bands less (3.24-3.50) with a band down to 84 %.
BAND_TEXTS = 100
MAX_BANDS = 3
_LOG_T_BOUNDS = (-3.0, 3.0)  # T in [0.05, 20]: past these a split is separable and the NLL has no minimum
SEED = 0


@dataclass
class Calibration:
    """What a run applies to its outputs; recorded in labels.json so every engine and export applies it."""

    method: str  # "temperature", "tag-temperature" or "conformal"
    fitted_on: int  # evaluation texts
    temperatures: list[float] | None = None  # one (single-label) or one per tag (multi-label)
    interval: float | None = None  # regression: half-width of the interval around each predicted value
    coverage: float | None = None  # regression: the share of true values the interval is fitted to hold
    # regression, where fitted: a half-width per band of the predicted value, and the bands' inner edges
    band_edges: list[float] | None = None
    band_intervals: list[float] | None = None
    # An export's: the temperatures are folded into its output layer (export/writing.py), so any runtime that
    # reads its weights, a plain transformers pipeline or onnxruntime included, gives calibrated outputs.
    in_weights: bool = False

    def apply(self, logits: np.ndarray) -> np.ndarray:
        if self.temperatures is None or self.in_weights:
            return logits
        return logits / np.asarray(self.temperatures, dtype=np.float64)

    def half_widths(self, values: np.ndarray) -> np.ndarray:
        """Regression: each predicted value's interval half-width (its band's, or the one for every value)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.band_intervals is None or self.band_edges is None:
            return np.full(len(values), self.interval, dtype=np.float64)
        return np.asarray(self.band_intervals)[band_of(self.band_edges, values)]

    def to_json(self) -> dict[str, Any]:
        record = {"method": self.method, "fitted_on": self.fitted_on}
        for key in ("temperatures", "interval", "coverage", "band_edges", "band_intervals"):
            value = getattr(self, key)
            if value is not None:
                record[key] = [round(float(t), 6) for t in value] if isinstance(value, list) else round(value, 6)
        if self.in_weights:
            record["in_weights"] = True
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Calibration:
        temperatures = record.get("temperatures")
        edges, bands = record.get("band_edges"), record.get("band_intervals")
        return cls(
            method=str(record["method"]),
            fitted_on=int(record.get("fitted_on", 0)),
            temperatures=[float(t) for t in temperatures] if temperatures is not None else None,
            interval=float(record["interval"]) if record.get("interval") is not None else None,
            coverage=float(record["coverage"]) if record.get("coverage") is not None else None,
            band_edges=[float(e) for e in edges] if edges is not None else None,
            band_intervals=[float(b) for b in bands] if bands is not None else None,
            in_weights=bool(record.get("in_weights", False)),
        )


# ----------------------------------------------------------------------------------------- fitting


def fit_temperature(logits: np.ndarray, loss: Any) -> float:
    """The T minimising `loss(logits / T)`, searched on log T (bounded: see _LOG_T_BOUNDS)."""
    from scipy.optimize import minimize_scalar

    fitted = minimize_scalar(lambda log_t: loss(logits / np.exp(log_t)), bounds=_LOG_T_BOUNDS, method="bounded",
                             options={"xatol": 1e-4})  # fmt: skip
    return float(np.exp(fitted.x))


def softmax_nll(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def softmax_temperature(logits: np.ndarray, classes: np.ndarray) -> float:
    """Single-label's temperature: the T minimising the cross-entropy of `classes` under softmax(logits / T)."""
    return fit_temperature(logits, lambda scaled: softmax_nll(scaled, classes))


def calibrated_nll(classes: np.ndarray, logits: np.ndarray) -> float:
    """Cross-entropy of these rows after the temperature that minimises it on them: how well the outputs rank and
    separate the classes, without the overconfidence (or timidity) that temperature scaling takes away."""
    return softmax_nll(logits / softmax_temperature(logits, classes), classes)


def sigmoid_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    # log(1 + e^-z) for y = 1 and log(1 + e^z) for y = 0, without overflow
    return float(np.mean(np.logaddexp(0.0, -logits) * targets + np.logaddexp(0.0, logits) * (1 - targets)))


def conformal_quantile(residuals: np.ndarray, coverage: float) -> float:
    """Split-conformal half-width: the ceil((n + 1) * coverage)-th smallest absolute residual (the largest when
    n is too small for the coverage asked)."""
    ordered = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    rank = int(np.ceil((len(ordered) + 1) * coverage))
    return float(ordered[min(rank, len(ordered)) - 1])


def conformal_bands(predictions: np.ndarray, residuals: np.ndarray, coverage: float
                    ) -> tuple[list[float], list[float]] | None:  # fmt: skip
    """Equal-mass bands of the predicted value and each band's split-conformal half-width; None where the texts
    make fewer than two bands (prediction_bands)."""
    edges = prediction_bands(predictions)
    if edges is None:
        return None
    band = band_of(edges, np.asarray(predictions, dtype=np.float64).reshape(-1))
    widths = [conformal_quantile(np.asarray(residuals)[band == b], coverage) for b in range(len(edges) + 1)]
    return [float(e) for e in edges], widths


def prediction_bands(predictions: np.ndarray) -> np.ndarray | None:
    """The inner edges of equal-mass bands of the predicted value, one per BAND_TEXTS texts up to MAX_BANDS; None
    where the texts make fewer than two bands (or tied predictions leave a band with under half of BAND_TEXTS)."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    count = min(MAX_BANDS, len(predictions) // BAND_TEXTS)
    if count < 2:
        return None
    edges = np.unique(np.quantile(predictions, np.linspace(0, 1, count + 1)[1:-1]))
    sizes = np.bincount(band_of(edges, predictions), minlength=len(edges) + 1)
    if len(edges) == 0 or sizes.min() < BAND_TEXTS // 2:
        return None
    return edges


def band_of(edges: Any, values: np.ndarray) -> np.ndarray:
    """[n] the band of each predicted value: 0 below the first inner edge, one more past each (an edge's own value
    in the band above it)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")


def logits_from_scores(space: LabelSpace, scores: np.ndarray) -> np.ndarray:
    """Back from what users read to logits (each problem type's inverse of its `scores`)."""
    return space.problem.logits(np.asarray(scores, dtype=np.float64))


# ----------------------------------------------------------------------------------------- judging


def expected_calibration_error(confidence: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over equal-mass bins: the mean |confidence - observed frequency| per bin, weighted by its size."""
    return float(sum(len(c) * abs(c.mean() - o.mean()) for c, o in _binned(confidence, outcome, bins)) /
                 max(len(confidence), 1))  # fmt: skip


def reliability(confidence: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> list[list[float]]:
    """[mean confidence, observed frequency, outputs] per equal-mass bin: the reliability diagram's points."""
    return [
        [round(float(c.mean()), 4), round(float(o.mean()), 4), len(c)] for c, o in _binned(confidence, outcome, bins)
    ]


def _binned(confidence: np.ndarray, outcome: np.ndarray, bins: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bins between the confidence's quantiles: equal mass, with equal confidences kept in one bin (a split of
    ties would be judged on the order they were sorted in)."""
    confidence, outcome = np.asarray(confidence, dtype=np.float64), np.asarray(outcome, dtype=np.float64)
    edges = np.quantile(confidence, np.linspace(0, 1, bins + 1)[1:-1]) if len(confidence) else np.array([])
    which = np.searchsorted(edges, confidence, side="right")
    return [(confidence[which == b], outcome[which == b]) for b in np.unique(which)]


def calibrate(space: LabelSpace, labels: np.ndarray, scores: np.ndarray, coverage: float = COVERAGE) -> tuple[
        Calibration | None, dict[str, Any]]:  # fmt: skip
    """The calibration fitted on all these evaluation rows, and its report for metrics.json: the method, what it
    fitted, and the quality before and after, cross-fitted over two seeded halves of the rows (a run's file is
    reproducible). None when temperatures fitted on one half made the other's NLL worse: the raw outputs were
    already as calibrated as these rows can tell (a run near its ECE floor), and a calibration would only add
    noise; the report says so (`applied`)."""
    problem, labels = space.problem, np.asarray(labels)
    logits = logits_from_scores(space, scores)
    fitted = problem.calibrate(labels, logits, coverage)
    second = np.zeros(len(logits), dtype=bool)
    second[np.random.default_rng(SEED).permutation(len(logits))[len(logits) // 2 :]] = True
    halves = [(rows, problem.calibrate(labels[~rows], logits[~rows], coverage)) for rows in (~second, second)]
    report = {"method": fitted.method, "fitted_on": fitted.fitted_on,
              "checked_by": "cross-fitted: fitted on one half of the evaluation split, scored on the other, and back",
              **problem.calibration_quality(labels, logits, fitted, halves)}  # fmt: skip
    report["applied"] = "before" not in report or report["after"]["nll"] < report["before"]["nll"]
    return (fitted if report["applied"] else None), report


def probability_quality(probabilities: np.ndarray, labels: np.ndarray, *, floor: bool = False) -> dict[str, Any]:
    """ECE, Brier score and NLL of class probabilities ([n, classes], labels [n] ids) or of tag probabilities
    ([n, tags], labels [n, tags] 0/1: every tag's probability an output of its own)."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-15, 1 - 1e-15)
    labels = np.asarray(labels)
    if labels.ndim == 1:  # single-label: the predicted class's probability against whether it was right
        truth = np.eye(probabilities.shape[1])[labels.astype(int)]
        confidence, outcome = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
        brier = float(((probabilities - truth) ** 2).sum(axis=1).mean())
        nll = float(-np.log(probabilities[np.arange(len(labels)), labels.astype(int)]).mean())
    else:
        confidence, outcome = probabilities.reshape(-1), labels.reshape(-1).round()
        brier = float(((probabilities - labels) ** 2).mean())
        nll = float(-(outcome * np.log(confidence) + (1 - outcome) * np.log1p(-confidence)).mean())
    quality = {"ece": round(expected_calibration_error(confidence, outcome), 6), "brier": round(brier, 6),
               "nll": round(nll, 6), "reliability": reliability(confidence, outcome)}  # fmt: skip
    if floor:
        quality["ece_floor"] = ece_floor(confidence)
    return quality


def ece_floor(confidence: np.ndarray, draws: int = 200) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many texts (the median
    over outcomes drawn as Bernoulli(confidence)): binned ECE is biased upwards by sampling noise, so an ECE
    near this floor is as calibrated as this evaluation split can tell."""
    rng = np.random.default_rng(SEED)
    confidence = np.asarray(confidence, dtype=np.float64)
    values = [expected_calibration_error(confidence, rng.random(len(confidence)) < confidence) for _ in range(draws)]
    return round(float(np.median(values)), 6)


def temperature_quality(problem: Any, labels: np.ndarray, logits: np.ndarray,
                        halves: list[tuple[np.ndarray, Calibration]]) -> dict[str, Any]:  # fmt: skip
    """Classification's quality before and after: raw probabilities against those calibrated out of half."""
    calibrated = np.empty_like(logits)
    for rows, fitted in halves:
        calibrated[rows] = fitted.apply(logits[rows])
    return {"before": probability_quality(problem.scores(logits), labels),
            "after": probability_quality(problem.scores(calibrated), labels, floor=True)}  # fmt: skip


def quality_on(space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """How well a model's outputs (`scores`, as users read them) state their own certainty on labelled texts, for
    `evaluate`: ECE, Brier and NLL of probabilities; a calibrated regression run's interval coverage."""
    calibration = space.calibration
    if space.problem_type == "regression":
        if calibration is None or calibration.interval is None:
            return {}
        predictions = np.asarray(scores, dtype=np.float64).reshape(-1)
        errors = np.abs(np.asarray(labels, dtype=np.float64).reshape(-1) - predictions)
        halves = calibration.half_widths(predictions)
        return {
            "coverage": round(float((errors <= halves).mean()), 4),
            "coverage_nominal": calibration.coverage,
            "interval_half_width": round(float(halves.mean()), 6) if len(halves) else round(calibration.interval, 6),
        }
    quality = probability_quality(scores, labels)
    del quality["reliability"]
    return {**quality, "calibrated": calibration is not None}
