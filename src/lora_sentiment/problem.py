"""What a run predicts: one label of several (single-label), any number of tags (multi-label), or a number
(regression). `LabelSpace` carries that through every stage: the head's size and loss (model.py), how
logits become scores, metrics and answers (metrics.py, outputs.py), and what a run records (run.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import UserError, first_line

ProblemType = Literal["single-label", "multi-label", "regression"]
# transformers' own names, set in the model config so the loss, an export and `pipeline` agree with us.
HF_PROBLEM_TYPES: dict[str, str] = {
    "single-label": "single_label_classification",
    "multi-label": "multi_label_classification",
    "regression": "regression",
}
DEFAULT_THRESHOLD = 0.5


@dataclass
class LabelSpace:
    problem_type: ProblemType
    names: list[str]  # class or tag names; for regression, the one target's name
    thresholds: list[float] | None = field(default=None)  # multi-label: one decision threshold per tag

    @property
    def num_outputs(self) -> int:
        return 1 if self.problem_type == "regression" else len(self.names)

    @property
    def hf_problem_type(self) -> str:
        return HF_PROBLEM_TYPES[self.problem_type]

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Logits to what users read: class probabilities, tag probabilities, or the predicted value."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.problem_type == "single-label":
            shifted = logits - logits.max(axis=-1, keepdims=True)
            exp = np.exp(shifted)
            return exp / exp.sum(axis=-1, keepdims=True)
        if self.problem_type == "multi-label":
            return 1.0 / (1.0 + np.exp(-logits))
        return logits

    def decision_thresholds(self) -> np.ndarray:
        if self.thresholds is not None:
            return np.asarray(self.thresholds, dtype=np.float64)
        return np.full(len(self.names), DEFAULT_THRESHOLD)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "label_names": self.names,
            "id2label": dict(enumerate(self.names)),
            "problem_type": self.problem_type,
        }
        if self.thresholds is not None:
            record["thresholds"] = dict(zip(self.names, (round(float(t), 6) for t in self.thresholds)))
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> LabelSpace:
        names = [str(n) for n in record["label_names"]]
        thresholds = record.get("thresholds")
        if isinstance(thresholds, dict):
            thresholds = [float(thresholds[n]) for n in names]
        # Runs made before multi-label and regression existed record no problem type: single-label.
        return cls(record.get("problem_type", "single-label"), names, thresholds)


def resolve_class_weights(spec: str, space: LabelSpace, labels: np.ndarray) -> np.ndarray | None:
    """`--class-weights` as one weight per class (single-label) or a positive weight per tag (multi-label).

    balanced: n_samples / (n_classes x count) per class, as scikit-learn computes it; for tags, the ratio of
    texts without to texts with the tag (BCE's pos_weight). A JSON object (inline or in a file) names the
    labels it weights; the others keep 1."""
    spec = spec.strip()
    if spec.lower() == "none":
        return None
    if space.problem_type == "regression":
        raise UserError("--class-weights applies to classification; drop it for --problem-type regression")
    labels = np.asarray(labels)
    if spec.lower() == "balanced":
        if space.problem_type == "multi-label":
            positives = labels.sum(axis=0)
            return (len(labels) - positives) / np.maximum(positives, 1)
        counts = np.bincount(labels.astype(int), minlength=len(space.names))
        return len(labels) / (len(space.names) * np.maximum(counts, 1))
    return _weights_from_json(spec, space)


def _weights_from_json(spec: str, space: LabelSpace) -> np.ndarray:
    source = spec
    if not spec.startswith(("{", "[")):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"--class-weights {spec!r} is not none, balanced, a JSON object or an existing file")
        source = path.read_text(encoding="utf-8")
    try:
        given = json.loads(source)
    except ValueError as exc:
        raise UserError(f"--class-weights: {spec} is not valid JSON ({first_line(exc)})") from None
    if isinstance(given, list):
        if len(given) != len(space.names):
            raise UserError(f"--class-weights lists {len(given)} weights for {len(space.names)} labels")
        given = dict(zip(space.names, given))
    if not isinstance(given, dict):
        raise UserError('--class-weights JSON must be an object of {"label": weight}')
    unknown = [str(k) for k in given if str(k) not in space.names]
    if unknown:
        raise UserError(
            f"--class-weights names {', '.join(map(repr, unknown))}, not a label of this data; "
            f"labels are: {', '.join(space.names)}"
        )
    weights = np.ones(len(space.names))
    for name, value in given.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise UserError(f"--class-weights: the weight of {name!r} must be a positive number, not {value!r}")
        weights[space.names.index(str(name))] = float(value)
    return weights
