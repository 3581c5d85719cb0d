"""The one predictor interface: a trained run (torch), an export (ONNX Runtime / OpenVINO, no torch) and one run
of a shared-base set all answer `predict`, `predict_scores`, `evaluate` and `info` over their `space`; several
runs together (a ClassifierSet) are a `PredictorSet` of named predictors. `opening.open_predictor` opens any of
them from a path. Light on purpose (numpy and pydantic): the torch-free export path imports it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..data.encoding import answerable
from ..options import EvalOptions, LoadOptions, LongText
from ..problems.abstention import Abstention
from ..problems.outputs import Prediction, predictions

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..problems.space import LabelSpace

__all__ = ["EvalOptions", "LoadOptions", "LongText", "Predictor", "PredictorBase", "PredictorSet"]


@runtime_checkable
class Predictor(Protocol):
    """One model that predicts."""

    @property
    def space(self) -> LabelSpace: ...

    @property
    def run_config(self) -> TrainConfig | None: ...

    @property
    def default_batch_size(self) -> int: ...

    def predict_scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, tag probabilities or values (one column), a row per text."""
        ...

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]: ...

    def evaluate(self, data: str, options: EvalOptions | None = None, **given: Any) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]:
        """What the server's /info says of it: labels, problem type, thresholds, precision, device, long texts."""
        ...


@runtime_checkable
class PredictorSet(Protocol):
    """Several named predictors (runs on one base model share its weights)."""

    @property
    def names(self) -> list[str]: ...

    def __getitem__(self, name: str) -> Predictor: ...

    def __contains__(self, name: str) -> bool: ...

    def predict_many(self, requests: Sequence[tuple[str | None, Sequence[str]]]) -> list[np.ndarray]: ...


class PredictorBase:
    """What every Predictor derives from its `predict_scores`, `space`, `precision`, `long_text` and `device`,
    written once."""

    space: LabelSpace
    precision: str
    long_text: str = "truncate"
    abstention: Abstention = Abstention()  # --min-confidence / --max-interval (problems/abstention.py)
    # The run or export folder it was opened from (None: built in memory): `evaluate` reads which texts the run
    # saw from it (runs/seen.py).
    run_path: Path | None = None

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @property
    def device(self) -> str:
        raise NotImplementedError

    def predict_scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """scikit-learn's name for `predict_scores`."""
        return self.predict_scores(texts, batch_size)

    def predict(self, texts: Iterable[str], batch_size: int | None = None) -> list[Prediction]:
        texts = answerable(texts)
        return predictions(texts, self.predict_scores(texts, batch_size), self.space, self.abstention)

    def evaluate(self, data: str, options: EvalOptions | None = None, **given: Any) -> dict[str, Any]:
        """Metrics on any labelled file, folder or hub split (`given`: EvalOptions' fields)."""
        from .evaluation import evaluate_on  # scikit-learn and datasets: only when evaluating

        return evaluate_on(self, data, EvalOptions.of(options, given))  # type: ignore[arg-type]

    def info(self) -> dict[str, Any]:
        return {
            "label_names": list(self.space.names),
            "problem_type": self.space.problem_type,
            "thresholds": self.space.thresholds,
            "long_text": self.long_text,
            "precision": self.precision,
            "device": self.device,
        }
