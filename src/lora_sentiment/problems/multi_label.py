"""Multi-label: any number of tags per text (GoEmotions' 28 emotions). Sigmoid per tag, binary cross-entropy,
per-tag decision thresholds tuned on the evaluation split, macro / micro F1, one-vs-rest logistic regression as
the baseline. Tags come as lists, delimiter-joined strings, or several 0/1 columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError
from .base import ProblemType, per_label_table
from .single_label import probability_columns

if TYPE_CHECKING:
    from .space import LabelSpace

THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


class MultiLabel(ProblemType):
    name = "multi-label"
    hf_name = "multi_label_classification"
    metrics = ("f1_macro", "f1_micro", "accuracy", "hamming_loss")
    headline = ("f1_macro", "f1_micro")
    has_boundary = True
    best_metric = "f1_macro"
    curve_metric = "f1_macro"
    lower_is_better = frozenset({"hamming_loss"})
    detection_order = 0
    claimed_because = "the labels are lists, or --label-separator / --label-columns is set"
    figure = "per_label_f1"
    audit_figure = "tag_noise"
    audit_noise_of = " of the tag decisions (present / absent)"
    file_columns = ("predicted_labels",)
    # Each tag learns from its own few positives, so a small set needs more passes than MIN_STEPS gives: at 1,000
    # GoEmotions comments (800 trained, 50 steps an epoch) 3 epochs scored macro-F1 0.246, level with TF-IDF's 0.236,
    # and 6 epochs (300 steps) 0.311, higher on each of three draws (docs/benchmarks/small-data.md); sets of 1,600
    # texts or more still train auto's 3 epochs.
    min_steps = 300
    baseline_label = "one-vs-rest logistic regression"
    pipeline_call = 'classify(["A wonderful, moving film."], truncation=True, top_k=None)  # a sigmoid per tag'
    export_note = (
        "Each tag's decision threshold (tuned on the evaluation split) is in `labels.json`; a tag is predicted "
        "when its probability reaches it."
    )

    def claims(self, column: Any, *, separator: str | None, label_columns: Sequence[str] | None) -> bool:
        import pyarrow as pa

        return bool(label_columns) or separator is not None or pa.types.is_list(column.type) or \
            pa.types.is_large_list(column.type)  # fmt: skip

    def encode(self, ds: Any, where: str, *, names: Sequence[str] | None, given_names: Sequence[str] | None,
               separator: str | None) -> tuple[Any, list[str]]:  # fmt: skip
        from . import targets  # pyarrow and datasets: only where data is read

        return targets.encode_tags(ds, where, names=names, given_names=given_names, separator=separator)

    def label_in_file(self, suggested: Any, current: Any, space: LabelSpace, separator: str | None,
                      column: Any) -> Any:  # fmt: skip
        tags = [n for n, on in zip(space.names, np.asarray(suggested) > 0.5) if on]
        if isinstance(current, str) and current.strip().startswith("["):  # a list written as text: so written back
            ids = all(n.isdigit() for n in space.names) and not any(q in current for q in "'\"")
            return str([int(t) for t in tags] if ids else tags)
        if isinstance(current, str):
            return (separator or ",").join(tags)
        numeric = all(n.isdigit() for n in space.names) and not any(
            isinstance(v, str) for values in column for v in list(values)[:1]
        )  # tags given as ids stay ids
        return [int(t) for t in tags] if numeric else tags

    def check_trainable(self, labels: np.ndarray, names: list[str], where: str) -> None:
        if len(names) < 2:
            raise UserError(f"training data in {where} has a single tag; multi-label needs two or more")
        if not np.asarray(labels).any():
            raise UserError(f"no text of the training data in {where} has a tag; multi-label needs texts with tags")

    def untrained_note(self, labels: np.ndarray, names: list[str]) -> str:
        never = [name for name, on in zip(names, np.asarray(labels).any(axis=0)) if not on]
        if not never:
            return ""
        return (
            f"Note: {len(never)} of the {len(names)} tags {'is' if len(never) == 1 else 'are'}"
            f" on no training text ({', '.join(never[:10])}"
            f"{', ...' if len(never) > 10 else ''}), so the run learns only to leave them off."
        )

    def balanced_weights(self, labels: np.ndarray, names: list[str]) -> np.ndarray:
        # BCE's pos_weight: texts without the tag over texts with it
        positives = labels.sum(axis=0)
        return (len(labels) - positives) / np.maximum(positives, 1)

    def weighted_loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)

    def output_start(self, labels: np.ndarray) -> np.ndarray | None:
        # Each tag starts at its frequency (bias = log-odds, as for rare classes in Lin et al. 2017): from zero,
        # the first epochs learn only how rare each tag is, and the text signal comes late.
        rates = np.clip(np.asarray(labels, dtype=np.float64).mean(axis=0), 1e-4, 1 - 1e-4)
        return np.log(rates / (1 - rates))

    def probe(
        self, features: np.ndarray, labels: np.ndarray, n_outputs: int, seed: int, intercept: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        from .probe import logistic, standardised, unscaled

        scaled, mean, scale = standardised(features, centred=intercept)
        tags = np.asarray(labels, dtype=np.float64).round().astype(int)
        weight = np.zeros((n_outputs, scaled.shape[1]))
        bias = self.output_start(tags).astype(np.float64) if intercept else np.zeros(n_outputs)
        for tag in range(n_outputs):  # one logistic regression per tag; a tag always or never on keeps its rate
            if 0 < tags[:, tag].sum() < len(tags):
                fitted = logistic(scaled, tags[:, tag], seed, intercept)
                weight[tag], bias[tag] = fitted.coef_[0], np.atleast_1d(fitted.intercept_)[0]
        return unscaled(weight, bias, mean, scale)

    def same_answers(
        self, space: LabelSpace, reference: np.ndarray, other: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        thresholds = space.decision_thresholds()
        return ((reference >= thresholds) == (other >= thresholds)).all(axis=1)

    def near_boundary(self, space: LabelSpace, scores: np.ndarray, band: float) -> np.ndarray | None:
        return (np.abs(scores - space.decision_thresholds()) < band).any(axis=1)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-logits))

    def logits(self, scores: np.ndarray) -> np.ndarray:
        clipped = np.clip(scores, 1e-15, 1 - 1e-15)
        return np.log(clipped) - np.log1p(-clipped)

    def evaluate(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, *, detailed: bool) -> dict[str, Any]:
        from sklearn.metrics import accuracy_score, f1_score, hamming_loss

        thresholds = space.decision_thresholds()
        labels = np.asarray(labels).astype(int)
        predictions = (scores >= thresholds).astype(int)
        metrics: dict[str, Any] = {
            "f1_micro": float(f1_score(labels, predictions, average="micro", zero_division=0)),
            "f1_macro": macro_f1(labels, predictions),
            "accuracy": float(accuracy_score(labels, predictions)),  # subset accuracy: every tag right
            "hamming_loss": float(hamming_loss(labels, predictions)),
        }
        if detailed:
            table = per_label_table(labels, predictions, space.names)
            for name, threshold in zip(space.names, thresholds):
                table[name]["threshold"] = float(threshold)
            metrics["per_label"] = table
        return metrics

    def resampled_metrics(
        self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, index: np.ndarray
    ) -> dict[str, np.ndarray]:
        from .intervals import confusion_counts, f1_from_counts, macro_over_seen, resampled_sums

        predicted, truth = scores >= space.decision_thresholds(), np.asarray(labels).round().astype(bool)
        tp, fp, fn = confusion_counts(truth, predicted, index)
        micro = f1_from_counts(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
        wrong = predicted != truth  # subset accuracy: every tag right; Hamming loss: the share of tags wrong
        per_text = np.stack([~wrong.any(axis=1), wrong.mean(axis=1)], axis=1)
        sums = resampled_sums(per_text, index) / index.shape[1]
        return {"f1_macro": macro_over_seen(f1_from_counts(tp, fp, fn), tp, fp, fn), "f1_micro": micro,
                "accuracy": sums[:, 0], "hamming_loss": sums[:, 1]}  # fmt: skip

    def decided(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray, threshold: float | None) -> LabelSpace:
        """--threshold for every tag, else each tag's best on these evaluation rows (the same rule each epoch, so
        the kept epoch is picked by what will be used)."""
        from dataclasses import replace

        chosen = [threshold] * len(space.names) if threshold is not None else tune_thresholds(labels, scores).tolist()
        return replace(space, thresholds=[float(t) for t in chosen])

    def decided_out_of_sample(
        self, labels: np.ndarray, scores: np.ndarray, threshold: float | None, seed: int
    ) -> dict[str, Any] | None:
        # Thresholds tuned on the rows they are scored on flatter them: on GoEmotions (three MiniLM runs, 30 draws
        # each of N validation comments as the evaluation rows, the rest as unseen texts) by 7.3-8.6, 5.5-6.2 and
        # 2.1-2.3 points of macro-F1 at N = 200, 400 and 2,000; each fifth decided by thresholds tuned on the other
        # four was off by -1.6 to -0.9, -0.3 to 0.0 and -0.2 to +0.3 (benchmarks/multilabel_thresholds.py).
        predicted = None if threshold is not None else self.out_of_sample_decisions(labels, scores, seed)
        if predicted is None:
            return None
        from sklearn.metrics import f1_score

        truth = np.asarray(labels).round().astype(bool)
        micro = float(f1_score(truth, predicted, average="micro", zero_division=0))
        return {"folds": OUT_OF_SAMPLE_FOLDS, "f1_macro": macro_f1(truth, predicted), "f1_micro": micro}

    def out_of_sample_decisions(self, labels: np.ndarray, scores: np.ndarray, seed: int) -> np.ndarray | None:
        """Each fifth of the rows decided by thresholds tuned on the other four (the same fifths for every model
        given the same seed, so two models compared on them stay paired)."""
        if len(labels) < 2 * OUT_OF_SAMPLE_FOLDS:
            return None
        truth = np.asarray(labels).round().astype(bool)
        parts = np.array_split(np.random.default_rng(seed).permutation(len(truth)), OUT_OF_SAMPLE_FOLDS)
        thresholds = np.empty(scores.shape)
        for k, part in enumerate(parts):
            others = np.concatenate([p for j, p in enumerate(parts) if j != k])
            thresholds[part] = tune_thresholds(truth[others], scores[others])
        return (scores >= thresholds).astype(np.float64)

    def calibrate(self, labels: np.ndarray, logits: np.ndarray, coverage: float) -> Any:
        from .calibration import Calibration, fit_temperature, sigmoid_nll

        tags = np.asarray(labels, dtype=np.float64).round()
        temperatures = [  # a tag always or never on in these rows has nothing to fit: it keeps its outputs
            fit_temperature(logits[:, k], lambda scaled, y=tags[:, k]: sigmoid_nll(scaled, y))
            if 0 < tags[:, k].sum() < len(tags)
            else 1.0
            for k in range(tags.shape[1])
        ]
        return Calibration("tag-temperature", len(tags), temperatures=temperatures)

    def calibration_quality(self, labels: np.ndarray, logits: np.ndarray, fitted: Any, halves: list) -> dict[str, Any]:
        from .calibration import temperature_quality

        temperatures = np.asarray(fitted.temperatures)
        return {"temperatures": {"min": round(float(temperatures.min()), 4),
                                 "median": round(float(np.median(temperatures)), 4),
                                 "max": round(float(temperatures.max()), 4)},
                **temperature_quality(self, labels, logits, halves)}  # fmt: skip

    selective_metric = "f1_micro"

    def confidence(self, scores: np.ndarray, space: LabelSpace) -> np.ndarray | None:
        return np.maximum(scores, 1 - scores).min(axis=1)  # the least sure of its tags: on or off

    def selective_score(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> float:
        from sklearn.metrics import f1_score

        predicted = (scores >= space.decision_thresholds()).astype(int)
        return float(f1_score(np.asarray(labels).astype(int), predicted, average="micro", zero_division=0))

    def abstains(self, scores: np.ndarray, space: LabelSpace, rule: Any) -> tuple[np.ndarray, Any]:
        if rule.min_confidence is None:
            return np.zeros(len(scores), dtype=bool), None
        uncertain = (scores > 1 - rule.min_confidence) & (scores < rule.min_confidence)
        return uncertain.any(axis=1), uncertain

    def label_issues(self, space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> Any:
        from .confident import tag_issues

        return tag_issues(scores, np.asarray(labels), space.names)

    def constant_scores(self, space: LabelSpace, labels: np.ndarray) -> np.ndarray:
        return labels.astype(float).mean(axis=0)

    def label_text(self, label: Any, space: LabelSpace) -> str:
        return ", ".join(name for name, on in zip(space.names, np.asarray(label) > 0.5) if on)

    def label_key(self, label: Any) -> Any:
        return tuple(np.flatnonzero(np.asarray(label) > 0.5).tolist())

    def answer(self, row: np.ndarray, space: LabelSpace) -> dict[str, Any]:
        on = np.flatnonzero(row >= space.decision_thresholds())
        tags = [space.names[i] for i in sorted(on, key=lambda i: -row[i])]
        return dict(labels=tags, probabilities={name: float(p) for name, p in zip(space.names, row)})

    def columns(self, scores: np.ndarray, present: np.ndarray, space: LabelSpace, fmt: str) -> dict[str, Any]:
        """A list per row in JSONL and Parquet, ';'-joined in CSV/TSV."""
        on = scores >= space.decision_thresholds()
        tags = [[n for n, hit in zip(space.names, row) if hit] if ok else None for row, ok in zip(on, present)]
        if fmt not in ("jsonl", "parquet"):
            tags = [";".join(t) if t is not None else None for t in tags]  # type: ignore[misc]
        return {"predicted_labels": tags, **probability_columns(scores, present, space, fmt)}

    def baseline_model(self, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        return OneVsRestClassifier(LogisticRegression(max_iter=1000, C=4.0, random_state=seed))

    def describe_labels(self, names: Sequence[str]) -> str:
        return f"any of {len(names)} tags per text (multi-label): {super().describe_labels(names)}"


OUT_OF_SAMPLE_FOLDS = 5


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the tags these rows have or were given, as single-label's over its classes: a tag with neither
    (a rare one in a small split) has no F1 and is not counted as 0 (intervals.macro_over_seen)."""
    from .intervals import f1_from_counts, macro_over_seen

    truth, predicted = np.asarray(truth).astype(bool), np.asarray(predicted).astype(bool)
    tp, fp, fn = (truth & predicted).sum(axis=0), (~truth & predicted).sum(axis=0), (truth & ~predicted).sum(axis=0)
    return float(macro_over_seen(f1_from_counts(tp, fp, fn), tp, fp, fn))


def tune_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per tag, the threshold on THRESHOLD_GRID with the best F1 on these rows (ties: the lowest). A tag with no
    positive among the rows keeps 0.5: its F1 is 0 at every threshold, and the tie rule would give it the grid's
    lowest, predicting it for any text whose probability reaches 0.05."""
    labels = np.asarray(labels).astype(bool)
    present = labels.any(axis=0)
    labels = labels[:, :, None]
    predicted = probabilities[:, :, None] >= THRESHOLD_GRID[None, None, :]
    tp = (predicted & labels).sum(axis=0)
    fp = (predicted & ~labels).sum(axis=0)
    fn = (~predicted & labels).sum(axis=0)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return np.where(present, THRESHOLD_GRID[f1.argmax(axis=1)], 0.5)


PROBLEM = MultiLabel()
