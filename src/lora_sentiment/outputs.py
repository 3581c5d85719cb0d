"""Model outputs as answers: the one place class probabilities become a predicted label, for every consumer
(the Python API, the CLI, files of texts, the server, and the examples a run records).

Light on purpose (numpy and pydantic only): the server's schema and the CLI's tables import it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class PredictionOut(BaseModel):
    """One text's prediction, as the server returns it."""

    label: int
    label_name: str
    probability: float
    probabilities: dict[str, float]

    @classmethod
    def from_row(cls, row: np.ndarray, label_names: Sequence[str], **extra: str) -> PredictionOut:
        best = int(row.argmax())
        return cls(
            label=best,
            label_name=label_names[best],
            probability=float(row[best]),
            probabilities={name: float(p) for name, p in zip(label_names, row)},
            **extra,
        )


class Prediction(PredictionOut):
    """One text's prediction, with its text: what `Classifier.predict` returns."""

    text: str


def predictions(texts: Sequence[str], probabilities: np.ndarray, label_names: Sequence[str]) -> list[Prediction]:
    return [Prediction.from_row(row, label_names, text=text) for text, row in zip(texts, probabilities)]


def best_labels(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `from_row` for files of texts: each row's label id and its probability."""
    best = probabilities.argmax(axis=1)
    return best, probabilities[np.arange(len(best)), best]


def format_table(predictions: Sequence[Prediction], title: str | None = None) -> str:
    """`label  probability  text` lines, padded to the longest label name (indented under a title)."""
    width = max((len(name) for p in predictions for name in p.probabilities), default=0)
    indent = "  " if title else ""
    lines = [title] if title else []
    lines += [f"{indent}{p.label_name:<{width}}  {p.probability:.3f}  {p.text}" for p in predictions]
    return "\n".join(lines)
