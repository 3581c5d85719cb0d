"""Model outputs as answers: the one place scores (LabelSpace.scores of the logits) become a prediction, for
every consumer: the Python API, the CLI, files of texts, the server, and the examples a run records.

Each problem type fills its own fields (its `answer`): single-label `label`, `label_name`, `probability`,
`probabilities`; multi-label `labels` (the tags at or above their thresholds) and every tag's `probabilities`;
regression `value` (and `interval`, low and high, when the run is calibrated). Fields a problem type does not
have are None and left out of JSON answers.

Light on purpose (numpy and pydantic only): the server's schema and the CLI's tables import it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from .space import LabelSpace


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
    interval: list[float] | None = None  # regression with a calibrated run: [low, high] around the value

    @classmethod
    def from_row(cls, row: np.ndarray, labels: LabelSpace | Sequence[str], **extra: str) -> PredictionOut:
        space = as_space(labels)
        return cls(**space.problem.answer(row, space), **extra)

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
