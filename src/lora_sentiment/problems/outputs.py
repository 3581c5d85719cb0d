"""Model outputs as answers: the one place scores (LabelSpace.scores of the logits) become a prediction, for
every consumer: the Python API, the CLI, files of texts, the server, and the examples a run records.

Each problem type fills its own fields (its `answer`): single-label `label`, `label_name`, `probability`,
`probabilities`; multi-label `labels` (the tags at or above their thresholds) and every tag's `probabilities`;
regression `value` (and `interval`, low and high, when the run is calibrated). Fields a problem type does not
have are None and left out of JSON answers.

Light on purpose (numpy and pydantic only): the server's schema and the CLI's tables import it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from .abstention import Abstention, abstained
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
    # With --min-confidence / --max-interval: whether the model was too unsure to answer (the best guess stays);
    # multi-label: the tags it is unsure of either way.
    abstained: bool | None = None
    uncertain: list[str] | None = None
    explanation: dict[str, Any] | None = None  # with --explain: the target and each word's score (explain.py)

    @classmethod
    def from_row(
        cls, row: np.ndarray, labels: LabelSpace | Sequence[str], rule: Abstention | None = None, **extra: str
    ) -> PredictionOut:
        space = as_space(labels)
        answer = space.problem.answer(row, space)
        if rule is not None and rule.active:
            held, uncertain = abstained(space, row[None, :], rule)
            answer["abstained"] = bool(held[0])
            if uncertain is not None:
                answer["uncertain"] = [name for name, unsure in zip(space.names, uncertain[0]) if unsure]
        return cls(**answer, **extra)

    @property
    def answer(self) -> str:
        """The prediction in a few words: the class, the tags, or the number (marked when abstained)."""
        if self.abstained:
            return f"abstained ({self._guess})"
        return self._guess

    @property
    def _guess(self) -> str:
        if self.value is not None:
            return f"{self.value:.3f}"
        if self.labels is not None:
            return ", ".join(self.labels) or "(no label)"
        return self.label_name or ""


class Prediction(PredictionOut):
    """One text's prediction, with its text: what `Classifier.predict` returns."""

    text: str


def predictions(
    texts: Sequence[str], scores: np.ndarray, labels: LabelSpace | Sequence[str], rule: Abstention | None = None
) -> list[Prediction]:
    space = as_space(labels)
    return [Prediction.from_row(row, space, rule, text=text) for text, row in zip(texts, scores)]


def format_table(predictions: Sequence[Prediction], title: str | None = None,
                 given: Sequence[str] | None = None) -> str:  # fmt: skip
    """`answer  probability  text` lines, padded to the longest label name (indented under a title); tags each
    with its probability, a number with its interval where the run is calibrated. `given`: each text's given label,
    shown before it (a run's examples drawn from its evaluation split)."""
    indent = "  " if title else ""
    lines = [title] if title else []
    texts = [p.text for p in predictions]
    if given:
        width = max(len(g) for g in given)
        texts = [f"(given {g + ')':<{width + 1}}  {t}" for g, t in zip(given, texts)]
    if predictions and predictions[0].label_name is None:  # tags or numbers: how sure goes into the answer
        shown = [_how_sure(p) for p in predictions]
        width = max(len(answer) for answer in shown)
        return "\n".join(lines + [f"{indent}{a:<{width}}  {t}" for a, t in zip(shown, texts)])
    width = max((len(p.answer) for p in predictions), default=0)
    lines += [f"{indent}{p.answer:<{width}}  {p.probability:.3f}  {t}" for p, t in zip(predictions, texts)]
    return "\n".join(lines)


def _how_sure(prediction: Prediction) -> str:
    """Tags as `joy 0.91, love 0.55`, a number as `7.594 (3.09 to 12.09)`; else the answer as it is."""
    if prediction.labels is not None and prediction.probabilities:
        sure = ", ".join(f"{tag} {prediction.probabilities[tag]:.2f}" for tag in prediction.labels) or "(no label)"
    elif prediction.value is not None and prediction.interval:
        sure = f"{prediction.value:.3f} ({prediction.interval[0]:.2f} to {prediction.interval[1]:.2f})"
    else:
        return prediction.answer
    return f"abstained ({sure})" if prediction.abstained else sure
