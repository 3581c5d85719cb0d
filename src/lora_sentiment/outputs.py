"""Model outputs as answers: the one place scores (LabelSpace.scores of the logits) become a prediction, for
every consumer: the Python API, the CLI, files of texts, the server, and the examples a run records.

Single-label: `label`, `label_name`, `probability`, `probabilities`. Multi-label: `labels` (the tags at or
above their thresholds) and every tag's `probabilities`. Regression: `value`. Fields a problem type does not
have are None and left out of JSON answers.

Light on purpose (numpy and pydantic only): the server's schema and the CLI's tables import it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from .problem import LabelSpace


def as_space(labels: LabelSpace | Sequence[str]) -> LabelSpace:
    """A LabelSpace, from itself or from a list of class names (single-label)."""
    return labels if isinstance(labels, LabelSpace) else LabelSpace("single-label", list(labels))


class PredictionOut(BaseModel):
    """One text's prediction, as the server returns it."""

    label: int | None = None
    label_name: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    labels: list[str] | None = None
    value: float | None = None

    @classmethod
    def from_row(cls, row: np.ndarray, labels: LabelSpace | Sequence[str], **extra: str) -> PredictionOut:
        space = as_space(labels)
        if space.problem_type == "regression":
            return cls(value=float(row[0]), **extra)
        probabilities = {name: float(p) for name, p in zip(space.names, row)}
        if space.problem_type == "multi-label":
            on = np.flatnonzero(row >= space.decision_thresholds())
            tags = [space.names[i] for i in sorted(on, key=lambda i: -row[i])]
            return cls(labels=tags, probabilities=probabilities, **extra)
        best = int(row.argmax())
        return cls(
            label=best, label_name=space.names[best], probability=float(row[best]), probabilities=probabilities, **extra
        )

    @property
    def answer(self) -> str:
        """The prediction in a few words: the class, the tags, or the number."""
        if self.value is not None:
            return f"{self.value:.3f}"
        if self.labels is not None:
            return ", ".join(self.labels) or "(no label)"
        return self.label_name or ""


class Prediction(PredictionOut):
    """One text's prediction, with its text: what `Classifier.predict` returns."""

    text: str


def predictions(texts: Sequence[str], scores: np.ndarray, labels: LabelSpace | Sequence[str]) -> list[Prediction]:
    space = as_space(labels)
    return [Prediction.from_row(row, space, text=text) for text, row in zip(texts, scores)]


def best_labels(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised single-label `from_row` for files of texts: each row's label id and its probability."""
    best = probabilities.argmax(axis=1)
    return best, probabilities[np.arange(len(best)), best]


def format_table(predictions: Sequence[Prediction], title: str | None = None) -> str:
    """`answer  probability  text` lines, padded to the longest label name (indented under a title)."""
    indent = "  " if title else ""
    lines = [title] if title else []
    if predictions and predictions[0].label_name is None:  # tags or numbers: the answer says it all
        width = max(len(p.answer) for p in predictions)
        return "\n".join(lines + [f"{indent}{p.answer:<{width}}  {p.text}" for p in predictions])
    width = max((len(name) for p in predictions for name in p.probabilities or {}), default=0)
    lines += [f"{indent}{p.label_name:<{width}}  {p.probability:.3f}  {p.text}" for p in predictions]
    return "\n".join(lines)
