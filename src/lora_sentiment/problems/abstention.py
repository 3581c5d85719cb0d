"""Abstention (selective prediction): an answer the model is not sure enough of is marked `abstained`, never
dropped; its best guess and probabilities stay beside the mark, so a person can take it from there.

- single-label: the predicted class's probability is under `min_confidence`;
- multi-label: a tag whose probability lies between 1 - min_confidence and min_confidence is `uncertain` (sure
  neither that it applies nor that it does not); a text with an uncertain tag is abstained;
- regression: the run's interval (calibration.py) is wider than `max_interval`.

With calibrated probabilities (calibration.py) min_confidence 0.9 means what it says: of the answers given, about
nine in ten are right. The risk-coverage table (`risk_coverage`) shows, on the evaluation split, what accuracy each
share of texts answered buys, so a user can choose it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .space import LabelSpace

COVERAGES = (1.0, 0.95, 0.9, 0.8)  # the table's rows: shares of texts answered


@dataclass(frozen=True)
class Abstention:
    min_confidence: float | None = None  # classification: the least probability an answer is given at
    max_interval: float | None = None  # regression: the widest interval (high - low) an answer is given with

    @property
    def active(self) -> bool:
        return self.min_confidence is not None or self.max_interval is not None

    @classmethod
    def of(cls, options: Any) -> Abstention:
        return cls(getattr(options, "min_confidence", None), getattr(options, "max_interval", None))


def abstained(space: LabelSpace, scores: np.ndarray, rule: Abstention | None) -> tuple[np.ndarray, np.ndarray | None]:
    """[n] whether each text is abstained on, and multi-label's [n, tags] uncertain tags (None otherwise)."""
    scores = np.asarray(scores)
    if rule is None or not rule.active or len(scores) == 0:
        return np.zeros(len(scores), dtype=bool), None
    return space.problem.abstains(scores, space, rule)


def check_abstention(space: LabelSpace, rule: Abstention, where: str) -> None:
    """A rule the run can follow: confidence for classifiers, an interval for a calibrated regression run."""
    from ..errors import UserError

    regression = space.problem.selective_flag == "max_interval"  # answers are numbers with intervals
    if rule.min_confidence is not None and regression:
        raise UserError(f"--min-confidence is for classifiers; {where} predicts numbers: use --max-interval")
    if rule.max_interval is not None and not regression:
        raise UserError(f"--max-interval is for regression; {where} is a classifier: use --min-confidence")
    if rule.max_interval is not None and (space.calibration is None or space.calibration.interval is None):
        raise UserError(f"--max-interval needs a run with intervals; {where} has none (train it with --calibration "
                        "auto and 50+ evaluation texts)")  # fmt: skip


def risk_coverage(space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any] | None:
    """Accuracy (single-label) or micro-F1 (multi-label) of the answers given, against the share of texts answered
    when the least sure are left out first: the curve (one point per 2 % of coverage) and the table at
    COVERAGES with the min_confidence (regression: the max_interval) that gives each. None where answers have no
    confidence of their own (a regression run with one interval for every text)."""
    confidence = space.problem.confidence(np.asarray(scores), space)
    if confidence is None or len(confidence) == 0:
        return None
    order = np.argsort(-confidence, kind="stable")
    n, name, flag = len(order), space.problem.selective_metric, space.problem.selective_flag
    curve, table = [], []
    for share in sorted({*np.round(np.linspace(0.02, 1.0, 50), 2), *COVERAGES}, reverse=True):
        kept = order[: max(1, int(round(share * n)))]
        score = space.problem.selective_score(space, np.asarray(labels)[kept], np.asarray(scores)[kept])
        curve.append([float(share), round(score, 4)])
        if share in COVERAGES:
            table.append({"coverage": float(share), name: round(score, 4),
                          flag: round(space.problem.threshold(float(confidence[kept[-1]])), 4)})  # fmt: skip
    return {"metric": name, "flag": flag, "curve": curve, "table": table}


def threshold_text(curve: dict[str, Any], row: dict[str, Any]) -> str:
    """`--min-confidence 0.912` (or `--max-interval 2.4`): the option that answers `row`'s share of texts."""
    flag = curve.get("flag", "min_confidence")
    value = f"{row[flag]:.3f}" if flag == "min_confidence" else f"{row[flag]:.3g}"
    return f"--{flag.replace('_', '-')} {value}"


def selective_metrics(space: LabelSpace, labels: np.ndarray, scores: np.ndarray, rule: Abstention) -> dict[str, Any]:
    """`evaluate` with --min-confidence / --max-interval: the share of texts answered, and the problem type's
    selective metric on those (accuracy, micro-F1; regression: MAE) beside the same on every text."""
    held, _ = abstained(space, scores, rule)
    answered = ~held
    labels, scores = np.asarray(labels), np.asarray(scores)
    name = space.problem.selective_metric
    record: dict[str, Any] = {"answered": round(float(answered.mean()), 4) if len(answered) else 0.0,
                              "answered_texts": int(answered.sum())}  # fmt: skip

    def score(rows: np.ndarray) -> float:
        return space.problem.selective_score(space, labels[rows], scores[rows])

    record[f"{name}_answered"] = round(score(answered), 4) if answered.any() else None
    record[f"{name}_all"] = round(score(np.ones(len(labels), dtype=bool)), 4) if len(labels) else None
    return record
