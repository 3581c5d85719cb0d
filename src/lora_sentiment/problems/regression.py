"""Regression: one number per text (a 1-10 rating read as a value). MSE, MAE / RMSE / Pearson / Spearman, ridge
regression as the baseline; the head starts at the training mean."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from .base import ProblemType

if TYPE_CHECKING:
    from .space import LabelSpace


# What moves a predicted value "not at all" when an engine or int8 replaces fp32: a share of the targets' SD.
ANSWER_TOLERANCE = 0.05


class Regression(ProblemType):
    name = "regression"
    hf_name = "regression"
    metrics = ("spearman", "pearson", "mae", "rmse")
    headline = ("spearman", "mae")
    best_metric = "loss"
    curve_metric = "spearman"
    lower_is_better = frozenset({"mae", "rmse"})
    detection_order = 1
    claimed_because = "the labels are numbers that are not all integers"
    file_columns = ("predicted_value", "predicted_low", "predicted_high")
    audit_figure = "residuals"
    baseline_label = "ridge regression"
    weighted = False
    named_after_column = True
    pipeline_call = 'classify(["A wonderful, moving film."], truncation=True, function_to_apply="none")'

    def claims(self, column: Any, *, separator: str | None, label_columns: Sequence[str] | None) -> bool:
        import pyarrow as pa
        import pyarrow.compute as pc

        # A number that is not an integer can never be a class id, however few the distinct values (ratings
        # divided by 10 have eight); integer columns stay classes (pass --problem-type regression for them).
        if not pa.types.is_floating(column.type):
            return False
        values = pc.drop_null(column).to_numpy(zero_copy_only=False)
        values = values[~np.isnan(values)]
        return bool(len(values) and not np.all(np.equal(np.mod(values, 1), 0)))

    def encode(self, ds: Any, where: str, *, names: Sequence[str] | None, given_names: Sequence[str] | None,
               separator: str | None) -> tuple[Any, list[str]]:  # fmt: skip
        from . import targets  # pyarrow and datasets: only where data is read

        return targets.encode_values(ds, where), list(names or given_names or ["value"])

    def num_outputs(self, names: Sequence[str]) -> int:
        return 1

    def label_in_file(self, suggested: Any, current: Any, space: LabelSpace, separator: str | None,
                      column: Any) -> Any:  # fmt: skip
        return float(suggested)

    def check_trainable(self, labels: np.ndarray, names: list[str], where: str) -> None:
        if len(np.unique(labels)) < 2:
            raise UserError(f"every training label in {where} has the same value; regression needs them to vary")

    def output_start(self, labels: np.ndarray) -> np.ndarray | None:
        return np.array([np.asarray(labels, dtype=np.float64).mean()])  # from zero, early epochs learn the mean

    def probe(
        self, features: np.ndarray, labels: np.ndarray, n_outputs: int, seed: int, intercept: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import Ridge

        from .probe import standardised, unscaled

        scaled, mean, scale = standardised(features, centred=intercept)
        fitted = Ridge(alpha=1.0, fit_intercept=intercept).fit(scaled, np.asarray(labels, dtype=np.float64))
        return unscaled(fitted.coef_.reshape(1, -1), np.atleast_1d(fitted.intercept_).reshape(1), mean, scale)

    def same_answers(
        self, space: LabelSpace, reference: np.ndarray, other: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        # A value has no label to flip: "the same" is within a twentieth of the targets' own spread.
        tolerance = ANSWER_TOLERANCE * float(np.std(np.asarray(labels, dtype=float)))
        return np.abs(reference.reshape(len(reference), -1) - other.reshape(len(other), -1)).max(axis=1) <= tolerance

    def scores(self, logits: np.ndarray) -> np.ndarray:
        return logits

    def logits(self, scores: np.ndarray) -> np.ndarray:
        return scores

    def evaluate(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, *, detailed: bool) -> dict[str, Any]:
        return regression_metrics(labels, scores)

    def resampled_metrics(
        self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, index: np.ndarray
    ) -> dict[str, np.ndarray]:
        from .intervals import OTHER_ROUNDS, resampled_sums

        targets_ = np.asarray(labels, dtype=np.float64).reshape(-1)
        predictions = np.asarray(scores, dtype=np.float64).reshape(-1)
        errors = targets_ - predictions
        sums = resampled_sums(np.stack([np.abs(errors), errors**2], axis=1), index) / index.shape[1]
        # Spearman is no sum over texts: each resample is ranked on its own, all at once in chunks of about 2M
        # values (one by one through scipy.stats.spearmanr: 1.5 ms a resample, 1.5 s at 200 texts, paid again for
        # the paired comparison with the baseline). Pearson likewise, on fewer rounds (it is no headline metric).
        chunks = np.array_split(index, max(1, index.size // 2_000_000))
        spearman = np.concatenate([_row_correlations(_ranks(targets_[rows]), _ranks(predictions[rows]))
                                   for rows in chunks])  # fmt: skip
        rows = index[:OTHER_ROUNDS]
        pearson = _row_correlations(targets_[rows], predictions[rows])
        return {"spearman": spearman, "mae": sums[:, 0], "rmse": np.sqrt(sums[:, 1]), "pearson": pearson}

    def calibrate(self, labels: np.ndarray, logits: np.ndarray, coverage: float) -> Any:
        from .calibration import Calibration, conformal_bands, conformal_quantile

        residuals = np.asarray(labels, dtype=np.float64).reshape(-1) - logits.reshape(-1)
        edges, widths = conformal_bands(logits, residuals, coverage) or (None, None)
        return Calibration("conformal", len(residuals), interval=conformal_quantile(residuals, coverage),
                           coverage=coverage, band_edges=edges, band_intervals=widths)  # fmt: skip

    def calibration_quality(self, labels: np.ndarray, logits: np.ndarray, fitted: Any, halves: list) -> dict[str, Any]:
        from .calibration import band_of

        predictions = logits.reshape(-1)
        errors = np.abs(np.asarray(labels, dtype=np.float64).reshape(-1) - predictions)
        covered, one, width = np.zeros(len(errors), bool), np.zeros(len(errors), bool), np.zeros(len(errors))
        for rows, other in halves:
            width[rows] = other.half_widths(predictions[rows])
            covered[rows] = errors[rows] <= width[rows]
            one[rows] = errors[rows] <= other.interval  # what one width for every text would have held
        report = {
            "coverage_nominal": fitted.coverage,
            "interval_half_width": round(fitted.interval, 6),
            "coverage": round(float(covered.mean()), 4),
            "cross_fitted_half_width": round(float(width.mean()), 6),
        }
        if fitted.band_intervals:  # and the cross-fitted coverage within each band of the saved fit
            band = band_of(fitted.band_edges, predictions)
            bands = range(band.max() + 1)
            report.update(
                band_edges=fitted.band_edges,
                band_half_widths=fitted.band_intervals,
                band_coverage=[round(float(covered[band == b].mean()), 4) for b in bands],
                band_coverage_one_width=[round(float(one[band == b].mean()), 4) for b in bands],
            )
        return report

    selective_metric = "mae"
    selective_flag = "max_interval"

    def confident_in(self, space: LabelSpace) -> bool:
        calibration = space.calibration
        return calibration is not None and calibration.band_intervals is not None  # else one width for all

    def confidence(self, scores: np.ndarray, space: LabelSpace) -> np.ndarray | None:
        if not self.confident_in(space):
            return None
        return -2 * space.calibration.half_widths(scores[:, 0])  # narrower is surer

    def threshold(self, confidence: float) -> float:
        return -confidence  # the interval's width: --max-interval

    def selective_score(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> float:
        return float(np.abs(np.asarray(labels, dtype=np.float64).reshape(-1) - scores.reshape(-1)).mean())

    def abstains(self, scores: np.ndarray, space: LabelSpace, rule: Any) -> tuple[np.ndarray, Any]:
        calibration = space.calibration
        if rule.max_interval is None or calibration is None or calibration.interval is None:
            return np.zeros(len(scores), dtype=bool), None
        return 2 * calibration.half_widths(scores[:, 0]) > rule.max_interval, None

    def issue_detail(self, score: float) -> str:
        return f"residual {score:.1f} robust SDs from the median"

    def label_issues(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> Any:
        from .confident import residual_issues

        return residual_issues(scores[:, 0], np.asarray(labels, dtype=float))

    def constant_scores(self, space: LabelSpace, labels: np.ndarray) -> np.ndarray:
        return np.array([labels.astype(float).mean()])

    def label_text(self, label: Any, space: LabelSpace) -> str:
        return f"{float(label):.4g}"

    def label_key(self, label: Any) -> Any:
        return round(float(label), 6)

    def answer(self, row: np.ndarray, space: LabelSpace) -> dict[str, Any]:
        value, half = float(row[0]), _half_widths(space, row[:1])
        return dict(value=value, interval=None if half is None else [value - half[0], value + half[0]])

    def columns(self, scores: np.ndarray, present: np.ndarray, space: LabelSpace, fmt: str) -> dict[str, Any]:
        half = _half_widths(space, scores[:, 0])
        if half is None:
            return {"predicted_value": scores[:, 0]}
        return {"predicted_value": scores[:, 0], "predicted_low": scores[:, 0] - half,
                "predicted_high": scores[:, 0] + half}  # fmt: skip

    def baseline_model(self, seed: int) -> Any:
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)

    def baseline_targets(self, labels: np.ndarray) -> np.ndarray:
        return np.asarray(labels).astype(float)

    def baseline_scores(self, pipeline: Any, texts: list[str], space: LabelSpace) -> np.ndarray:
        return pipeline.predict(texts).reshape(-1, 1)

    def describe_labels(self, names: Sequence[str]) -> str:
        return f"one number ({names[0]}), regression"


def _half_widths(space: LabelSpace, values: np.ndarray) -> np.ndarray | None:
    calibration = space.calibration
    if calibration is None or calibration.interval is None:
        return None
    return calibration.half_widths(values)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each row's ranks, ties given their mean rank (as spearmanr ranks)."""
    from scipy.stats import rankdata

    return rankdata(values, axis=1)


def _row_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of `a` with the same row of `b`; NaN where a row is constant (no correlation)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    spread = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 0, (a * b).sum(axis=1) / np.where(spread > 0, spread, 1), np.nan)


def regression_metrics(targets_: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    from scipy import stats
    from sklearn.metrics import mean_absolute_error

    targets_ = np.asarray(targets_, dtype=np.float64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    with warnings.catch_warnings():  # constant predictions (an untrained head) have no correlation: NaN
        warnings.simplefilter("ignore")
        pearson = stats.pearsonr(targets_, predictions)[0] if len(targets_) > 1 else float("nan")
        spearman = stats.spearmanr(targets_, predictions)[0] if len(targets_) > 1 else float("nan")
    return {
        "mae": float(mean_absolute_error(targets_, predictions)),
        "rmse": float(np.sqrt(np.mean((targets_ - predictions) ** 2))),
        "pearson": float(pearson),
        "spearman": float(spearman),
    }


PROBLEM = Regression()
