"""What a run predicts, carried through every stage: its problem type (problems/base.py), the label or tag names,
and multi-label's per-tag decision thresholds. Recorded in a run's labels.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, first_line
from .base import REGISTRY, ProblemType, problem_type
from .calibration import Calibration

DEFAULT_THRESHOLD = 0.5
# The given_as of a classification run saved before labels.json recorded it (lora-sentiment 0.3 and earlier).
UNRECORDED = "unrecorded"


@dataclass
class LabelSpace:
    problem_type: str  # a name in problems.base.REGISTRY
    names: list[str]  # class or tag names; for regression, the one target's name
    thresholds: list[float] | None = field(default=None)  # multi-label: one decision threshold per tag
    calibration: Calibration | None = field(default=None)  # fitted after training (calibration.py)
    # How the training file gave its classes, or its tags (in lists or joined in strings), "names" or "ids" (None:
    # a dataset's own class names, tags stacked from 0/1 columns; UNRECORDED: a run saved before this was
    # recorded). Ids read against names would be a guess at the user's numbering.
    given_as: str | None = field(default=None)

    @property
    def problem(self) -> ProblemType:
        return problem_type(self.problem_type)

    @property
    def num_outputs(self) -> int:
        return self.problem.num_outputs(self.names)

    @property
    def hf_problem_type(self) -> str:
        return self.problem.hf_name

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Logits to what users read: class probabilities, tag probabilities, or the predicted value."""
        logits = np.asarray(logits, dtype=np.float64)
        return self.problem.scores(self.calibration.apply(logits) if self.calibration else logits)

    def uncalibrated(self) -> LabelSpace:
        return LabelSpace(self.problem_type, self.names, self.thresholds, given_as=self.given_as)

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
        if self.calibration is not None:
            record["calibration"] = self.calibration.to_json()
        if self.given_as != UNRECORDED and self.problem_type != "regression":
            record["labels_given_as"] = self.given_as  # null written too: the key's absence marks an older run
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> LabelSpace:
        names = [str(n) for n in record["label_names"]]
        thresholds = record.get("thresholds")
        if isinstance(thresholds, dict):
            thresholds = [float(thresholds[n]) for n in names]
        # Runs made before multi-label and regression existed record no problem type: single-label.
        name = record.get("problem_type", "single-label")
        if name not in REGISTRY:
            raise ValueError(f"problem type {name!r} is not one this version knows ({', '.join(REGISTRY)})")
        calibration = record.get("calibration")
        given_as = record.get("labels_given_as", UNRECORDED if name != "regression" else None)
        return cls(name, names, thresholds, Calibration.from_json(calibration) if calibration else None,
                   given_as if given_as in ("names", "ids", UNRECORDED) else None)  # fmt: skip


def resolve_class_weights(spec: str, space: LabelSpace, labels: np.ndarray) -> np.ndarray | None:
    """`--class-weights` as one weight per class (single-label) or a positive weight per tag (multi-label).

    balanced: the problem type's own rule; a JSON object (inline or in a file) names the labels it weights; the
    others keep 1; auto: balanced where the problem type asks for it (single-label classes that are skewed)."""
    spec = spec.strip()
    if spec.lower() == "auto":
        spec = "balanced" if space.problem.balance_by_default(np.asarray(labels)) else "none"
    if spec.lower() == "none":
        return None
    if not space.problem.weighted:
        raise UserError(f"--class-weights applies to classification; drop it for --problem-type {space.problem_type}")
    if spec.lower() == "balanced":
        return space.problem.balanced_weights(np.asarray(labels), space.names)
    return _weights_from_json(spec, space)


def describe_weights(weights: dict[str, float]) -> str:
    """The log's and the model card's one way of naming the weights by label: "Negative 0.556, Positive 5"."""
    return ", ".join(f"{name} {weight:.3g}" for name, weight in weights.items())


def _weights_from_json(spec: str, space: LabelSpace) -> np.ndarray:
    source = spec
    if not spec.startswith(("{", "[")):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"--class-weights {spec!r} is not auto, none, balanced, a JSON object or an existing file")
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
