"""Single-label: one class of several per text (IMDB's Negative / Positive). Softmax probabilities, cross-entropy,
accuracy / F1 / ROC-AUC, the confusion matrix, logistic regression as the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from .base import ProblemType, per_label_table

if TYPE_CHECKING:
    from .space import LabelSpace


# Classes are skewed where the rarest present one has under half the share it would have if all were even (under
# 25 % of two classes, 10 % of five): there accuracy mostly counts the common classes.
SKEWED_SHARE = 0.5
SKEWED_HEADLINE = ("f1_macro", "accuracy")
SKEW_ADVICE = {  # by --class-weights; a JSON object of the user's own weights needs none
    "auto": "; the loss weighs them balanced (--class-weights auto; none to turn it off)",
    "none": "; --class-weights auto or balanced trains for the rare classes",
    "balanced": "; the loss weighs them balanced",
}


def skewed(support: Sequence[int]) -> bool:
    present = [int(n) for n in support if n > 0]
    return len(present) > 1 and min(present) / sum(present) < SKEWED_SHARE / len(present)


class SingleLabel(ProblemType):
    name = "single-label"
    hf_name = "single_label_classification"
    metrics = ("accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc")
    selection_metrics = ("calibrated_loss",)
    headline = ("accuracy", "f1")
    has_boundary = True
    # The kept epoch: cross-entropy after the temperature fitted on the same evaluation rows. The raw loss rises as
    # a run grows sure of itself while its accuracy still climbs, and calibration takes that overconfidence away
    # after training (benchmarks/epoch_selection.py; docs/training.md).
    best_metric = "calibrated_loss"
    lower_is_better = frozenset({"calibrated_loss"})
    curve_metric = "accuracy"
    figure = "confusion_matrix"
    file_columns = ("predicted_label", "predicted_label_name", "probability")
    stratified = True
    baseline_label = "logistic regression"
    # LoRA's and TF-IDF's scores averaged flag wrong labels with +0.09 to +0.11 more precision than LoRA's alone at
    # the same recall, on two draws of injected noise (docs/audit.md); not measured for the other problem types.
    audit_scorer = "lora+tfidf"

    def encode(self, ds: Any, where: str, *, names: Sequence[str] | None, given_names: Sequence[str] | None,
               separator: str | None) -> tuple[Any, list[str]]:  # fmt: skip
        from . import targets  # pyarrow and datasets: only where data is read

        return targets.encode_labels(ds, where, names=names, given_names=given_names)

    def label_in_file(self, suggested: Any, current: Any, space: LabelSpace, separator: str | None,
                      column: Any) -> Any:  # fmt: skip
        if isinstance(current, (list, tuple, np.ndarray)):  # one class a text, kept as a one-item list
            return [self.label_in_file(suggested, current[0], space, separator, column)]
        if isinstance(current, (bool, np.bool_)):  # False / True: read as ids 0 and 1
            return bool(int(suggested))
        return space.names[int(suggested)] if isinstance(current, str) else int(suggested)

    def check_trainable(self, labels: np.ndarray, names: list[str], where: str) -> None:
        present = np.unique(labels)
        if len(present) < 2:
            raise UserError(
                f"training data in {where} has a single class ({names[int(present[0])]}); "
                "a classifier needs two or more"
            )

    def support(self, labels: np.ndarray) -> np.ndarray:
        return np.bincount(np.asarray(labels).astype(int))

    def headline_metrics(self, support: Sequence[int] | None = None) -> tuple[str, ...]:
        # Skewed texts lead with macro-F1: answering the majority class to every text scores a high accuracy
        # (0.95 for a class of 5 %), and two classes' F1 is the second class's, whichever that is.
        return SKEWED_HEADLINE if support is not None and skewed(support) else self.headline

    def balance_by_default(self, labels: np.ndarray) -> bool:
        # Higher macro-F1 on all nine draws: IMDB made 5 % and 10 % positive, four GoEmotions classes at their own
        # shares (benchmarks/skewed_weights.py, docs/problem-types.md).
        return skewed(self.support(labels))

    def skew_note(self, labels: np.ndarray, names: list[str], weights: str) -> str:
        """A line for training texts whose classes are skewed ("" where they are not)."""
        counts = np.bincount(np.asarray(labels).astype(int), minlength=len(names))
        if not skewed(counts):
            return ""
        present = np.flatnonzero(counts)
        rare, common = present[np.argmin(counts[present])], int(np.argmax(counts))
        advice = SKEW_ADVICE.get(weights.strip().lower(), "")
        return (f"Skewed classes: {names[rare]} is {counts[rare]} of the {counts.sum()} training texts "
                f"({counts[rare] / counts.sum():.1%}), {names[common]} {counts[common] / counts.sum():.0%}. Answering "
                f"{names[common]} to every text would score a high accuracy, so scores on texts this skewed lead with "
                f"macro-F1{advice}.")  # fmt: skip

    def untrained_note(self, labels: np.ndarray, names: list[str]) -> str:
        empty = [name for name, count in zip(names, np.bincount(labels.astype(int), minlength=len(names))) if not count]
        if not empty:
            return ""
        # Integer labels are class ids 0..max, so ratings 1-10 make 11 classes, three of them (0, 5, 6 in IMDB's
        # ratings) with no text: the head spends outputs, and macro scores count classes, that nothing teaches.
        why = ""
        if all(name == str(i) for i, name in enumerate(names)):
            why = (
                f"; integer labels are read as class ids 0..{len(names) - 1}: for a number to predict (a rating) "
                "pass --problem-type regression, else renumber the classes 0, 1, 2, ... or give them as names"
            )
        return (
            f"Note: {len(empty)} of the {len(names)} classes {'has' if len(empty) == 1 else 'have'}"
            f" no training text ({', '.join(empty[:10])}"
            f"{', ...' if len(empty) > 10 else ''}), so the run cannot learn to predict them{why}."
        )

    def balanced_weights(self, labels: np.ndarray, names: list[str]) -> np.ndarray:
        # n_samples / (n_classes x count), as scikit-learn's class_weight="balanced"
        counts = np.bincount(labels.astype(int), minlength=len(names))
        return len(labels) / (len(names) * np.maximum(counts, 1))

    def weighted_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits, labels.long(), weight=weight)

    def probe(
        self, features: np.ndarray, labels: np.ndarray, n_outputs: int, seed: int, intercept: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        from .probe import logistic, standardised, unscaled

        scaled, mean, scale = standardised(features, centred=intercept)
        fitted = logistic(scaled, np.asarray(labels).astype(int), seed, intercept)
        classes = fitted.classes_.astype(int)
        intercepts = np.atleast_1d(fitted.intercept_) * np.ones(len(fitted.coef_))
        if len(classes) == 2:  # one logit difference, split evenly: softmax([-z/2, z/2]) == sigmoid(z)
            coef = np.stack([-fitted.coef_[0], fitted.coef_[0]]) / 2
            starts = np.array([-intercepts[0], intercepts[0]]) / 2
        else:
            coef, starts = fitted.coef_, intercepts
        weight = np.zeros((n_outputs, scaled.shape[1]))
        # A class the training split lacks starts unlikely (with a bias; without one, at logit 0).
        bias = np.full(n_outputs, starts.min() - 10.0 if intercept else 0.0)
        weight[classes], bias[classes] = coef, starts
        return unscaled(weight, bias, mean, scale)

    def same_answers(
        self, space: LabelSpace, reference: np.ndarray, other: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        return reference.argmax(axis=1) == other.argmax(axis=1)

    def near_boundary(self, space: LabelSpace, scores: np.ndarray, band: float) -> np.ndarray | None:
        # The top two classes swap only if they close their gap, each moving by at most `band`.
        top_two = np.sort(scores, axis=1)[:, -2:]
        return top_two[:, 1] - top_two[:, 0] < 2 * band

    def scores(self, logits: np.ndarray) -> np.ndarray:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=-1, keepdims=True)

    def logits(self, scores: np.ndarray) -> np.ndarray:
        return np.log(np.clip(scores, 1e-300, None))  # up to a per-row constant, which softmax and T ignore

    def evaluate(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, *, detailed: bool) -> dict[str, Any]:
        from .calibration import calibrated_nll

        metrics = classification_metrics(labels, scores, with_confusion=detailed)
        metrics["calibrated_loss"] = calibrated_nll(np.asarray(labels).astype(int), self.logits(scores))
        if detailed:
            metrics["per_label"] = per_label_table(labels, scores.argmax(axis=-1), space.names)
        return metrics

    def resampled_metrics(
        self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, index: np.ndarray
    ) -> dict[str, np.ndarray]:
        from .intervals import confusion_counts, f1_from_counts, macro_over_seen

        labels, predicted = np.asarray(labels).astype(int), scores.argmax(axis=-1)
        n, classes = index.shape[1], scores.shape[-1]
        onehot = np.eye(classes, dtype=bool)
        tp, fp, fn = confusion_counts(onehot[labels], onehot[predicted], index)
        f1 = f1_from_counts(tp, fp, fn)  # per class; "f1" is class 1's for two classes, else their mean
        precision, recall = (
            np.divide(tp, tp + other, out=np.zeros_like(tp), where=tp + other > 0) for other in (fp, fn)
        )

        def macro(per_class: np.ndarray) -> np.ndarray:  # the classes each resample has or was given, as evaluate's
            return macro_over_seen(per_class, tp, fp, fn)

        one = (lambda per_class: per_class[:, 1]) if classes == 2 else macro
        draws = {"accuracy": tp.sum(axis=1) / n, "f1": one(f1), "f1_macro": macro(f1),
                 "precision": one(precision), "recall": one(recall)}  # fmt: skip
        if classes == 2:
            draws["roc_auc"] = _resampled_auc(labels, scores[:, 1], index)
        return draws

    def calibrate(self, labels: np.ndarray, logits: np.ndarray, coverage: float) -> Any:
        from .calibration import Calibration, softmax_temperature

        classes = np.asarray(labels).astype(int)
        return Calibration("temperature", len(classes), temperatures=[softmax_temperature(logits, classes)])

    def calibration_quality(self, labels: np.ndarray, logits: np.ndarray, fitted: Any, halves: list) -> dict[str, Any]:
        from .calibration import temperature_quality

        return {"temperature": round(fitted.temperatures[0], 4), **temperature_quality(self, labels, logits, halves)}

    selective_metric = "accuracy"

    def confidence(self, scores: np.ndarray, space: LabelSpace) -> np.ndarray | None:
        return scores.max(axis=1)

    def selective_score(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> float:
        return float((scores.argmax(axis=1) == np.asarray(labels).astype(int)).mean())

    def abstains(self, scores: np.ndarray, space: LabelSpace, rule: Any) -> tuple[np.ndarray, Any]:
        if rule.min_confidence is None:
            return np.zeros(len(scores), dtype=bool), None
        return scores.max(axis=1) < rule.min_confidence, None

    def label_issues(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> Any:
        from .confident import class_issues

        return class_issues(scores, np.asarray(labels), space.names)

    def constant_scores(self, space: LabelSpace, labels: np.ndarray) -> np.ndarray:
        return np.bincount(labels.astype(int), minlength=len(space.names)) / len(labels)

    def label_text(self, label: Any, space: LabelSpace) -> str:
        return space.names[int(label)]

    def answer(self, row: np.ndarray, space: LabelSpace) -> dict[str, Any]:
        best = int(row.argmax())
        probabilities = {name: float(p) for name, p in zip(space.names, row)}
        return dict(label=best, label_name=space.names[best], probability=float(row[best]), probabilities=probabilities)

    def columns(self, scores: np.ndarray, present: np.ndarray, space: LabelSpace, fmt: str) -> dict[str, Any]:
        import pandas as pd

        best, best_probability = best_labels(scores[present])
        label = pd.array([None] * len(scores), dtype="Int64")
        label[present] = best
        name = np.full(len(scores), None, dtype=object)
        name[present] = [space.names[i] for i in best]
        confidence = np.full(len(scores), np.nan)
        confidence[present] = best_probability
        return {"predicted_label": label, "predicted_label_name": name, "probability": confidence.round(6),
                **probability_columns(scores, present, space, fmt)}  # fmt: skip

    def baseline_model(self, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, C=4.0, random_state=seed)

    def baseline_sample_weights(self, labels: np.ndarray, weights: np.ndarray | None) -> np.ndarray | None:
        return None if weights is None else np.asarray(weights)[labels.astype(int)]

    def baseline_scores(self, pipeline: Any, texts: list[str], space: LabelSpace) -> np.ndarray:
        full = np.zeros((len(texts), len(space.names)))  # classes absent from the training split get 0
        full[:, pipeline[-1].classes_.astype(int)] = pipeline.predict_proba(texts)
        return full


def _resampled_auc(labels: np.ndarray, positive: np.ndarray, index: np.ndarray) -> np.ndarray:
    """ROC-AUC on every resample at once, as Mann-Whitney's U with each text weighted by how often it was drawn:
    the share of (positive, negative) pairs ordered right, ties counting half. NaN where one class is missing."""
    from .intervals import resample_weights

    order = np.argsort(positive, kind="stable")
    weights = resample_weights(index, len(labels))[:, order]
    ordered = positive[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # equal scores are one group: ties
    is_positive = labels[order] == 1
    pos = np.add.reduceat(weights * is_positive, starts, axis=1)  # [rounds, scores]: positives drawn at each
    neg = np.add.reduceat(weights * ~is_positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    right = (pos * (below + 0.5 * neg)).sum(axis=1)
    return np.divide(right, pairs, out=np.full(len(index), np.nan), where=pairs > 0)


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, *, with_confusion: bool = True
) -> dict[str, Any]:
    """accuracy, precision, recall, F1 (binary on class 1, macro for 3+ classes), macro F1, ROC-AUC (binary),
    confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels = np.asarray(labels)
    num_labels = probabilities.shape[-1]
    predictions = probabilities.argmax(axis=-1)
    binary = num_labels == 2
    classes = list(range(num_labels))
    # Macro means over the classes these rows have or were given, as scikit-learn's default: a class with neither
    # (none of a rating's 11 values in a small split) has no F1, and counting it as 0 read 0.158 where 0.217 was due.
    seen = sorted(set(labels.tolist()) | set(predictions.tolist()))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="binary" if binary else "macro", labels=None if binary else seen,
        zero_division=0,
    )  # fmt: skip
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "f1_macro": float(f1_score(labels, predictions, average="macro", labels=seen, zero_division=0)),
    }
    if binary:
        # ROC-AUC is undefined when the evaluated rows hold a single class.
        single_class = len(np.unique(labels)) != 2
        metrics["roc_auc"] = float("nan") if single_class else float(roc_auc_score(labels, probabilities[:, 1]))
    if with_confusion:
        metrics["confusion_matrix"] = confusion_matrix(labels, predictions, labels=classes).tolist()
    return metrics


def probability_columns(scores: np.ndarray, present: np.ndarray, space: LabelSpace, fmt: str) -> dict[str, Any]:
    """Every label's probability: prob_<label> columns, or one `probabilities` object per JSONL row."""
    if fmt == "jsonl":
        objects = [
            {name: round(float(p), 6) for name, p in zip(space.names, row)} if ok else None
            for row, ok in zip(scores, present)
        ]
        return {"probabilities": objects}
    return {f"prob_{name}": scores[:, i] for i, name in enumerate(space.names)}


def best_labels(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised single-label `from_row` for files of texts: each row's label id and its probability."""
    best = probabilities.argmax(axis=1)
    return best, probabilities[np.arange(len(best)), best]


PROBLEM = SingleLabel()
