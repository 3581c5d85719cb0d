"""metrics.json, typed: the kept epoch's scores, the per-epoch history, training statistics, the examples, the
baseline. Written once by training, read by report, serve and the card."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    """Typed, but still readable as `record["key"]` (the Python API handed out plain dicts before)."""

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None)
        return default if value is None else value


class Scores(_Record):
    """Evaluation metrics by name (accuracy, f1, ... as computed for the run's labels), and where they came from."""

    samples: int | None = None
    epoch: float | None = None
    loss: float | None = None
    confusion_matrix: list[list[int]] | None = None


class EpochRecord(_Record):
    """One evaluation during training: its epoch's mean training loss beside its eval metrics."""

    epoch: float
    step: int
    train_loss: float | None = None


class TrainStats(_Record):
    runtime_s: float | None = None
    step_seconds: float = 0.0
    samples_per_second: float | None = None
    real_tokens_per_second: float | None = None
    real_tokens_per_epoch: int = 0
    squared_lengths_per_epoch: int = 0  # attention cost grows with s²
    epochs: float = 0.0
    max_length: int | None = None
    train_samples: int | None = None
    dropped_empty: dict[str, int] = Field(default_factory=dict)
    precision: str | None = None
    added_pad_token: bool = False
    class_weights: dict[str, float] | None = None  # the loss's weight per label, as --class-weights resolved
    # "best": the best evaluation's state was kept; "last": the final one (a fixed schedule: the evaluation split
    # too small to choose between epochs, training/schedule.py). None: a run from before this was recorded.
    kept: str | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0


class ExampleRow(_Record):
    text: str
    label: str
    probabilities: dict[str, float]
    given: str | None = None  # the label it was given, where it was drawn from the evaluation split


class Examples(_Record):
    before: list[ExampleRow] = Field(default_factory=list)
    after: list[ExampleRow] = Field(default_factory=list)


class RunMetrics(_Record):
    """metrics.json: the kept epoch's scores, the per-epoch history, training statistics, the examples."""

    final: Scores
    history: list[EpochRecord] = Field(default_factory=list)
    train: TrainStats = Field(default_factory=TrainStats)
    examples: Examples = Field(default_factory=Examples)
    baseline: dict[str, Any] | None = None  # the TF-IDF + linear model's scores on the same split (baseline.py)
    # The run against the baseline on the same texts: the difference in the first headline metric, its 95 %
    # paired-bootstrap interval, and whether it is beyond the noise (problems/intervals.py).
    comparison: dict[str, Any] | None = None
    # --folds K: the recipe's scores on every training text, each from a run trained on the other folds, with
    # the baseline's on the same folds and their paired comparison (training/folds.py).
    cross_validation: dict[str, Any] | None = None
    # Evaluation texts equal (normalised) to a training text: how many, and how many of those are under 5 words.
    overlap: dict[str, int] | None = None
    log_history: list[dict[str, Any]] = Field(default_factory=list)

    def to_json(self) -> str:
        # exclude_unset: the file holds the keys the run computed, as it always has.
        return json.dumps(self.model_dump(exclude_unset=True), indent=2, default=_plain)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (a numpy bool stays a bool, not 1.0); anything else the json
    module cannot write is an error, not silently a number."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise TypeError(f"metrics.json cannot hold a {type(value).__name__}")
