"""One door to every model this package makes: a run folder, an export folder, or several runs (a list, or a
dict of name -> folder) become a Predictor or a PredictorSet (inference/base.py). `predict`, `evaluate`, `serve`,
the file workers and Ray open models here and nowhere else. An export opens without importing torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .export.folder import ExportedClassifier, check_export, export_info
from .inference.base import LoadOptions
from .runs.run import is_export

if TYPE_CHECKING:
    from .inference.base import Predictor, PredictorSet

Target = str | Path | Sequence[str | Path] | Mapping[str, str | Path]


def open_predictor(target: Target, options: LoadOptions | None = None, **given: Any) -> Predictor | PredictorSet:
    """`target` as a predictor: one run (merged, the fast path) or export, or several runs sharing their bases.
    `given`: LoadOptions' fields (precision, device, long_text, stride, threads), as keywords."""
    options = options or LoadOptions(**given)
    if isinstance(target, (str, Path)):
        if is_export(target):
            return ExportedClassifier.open(target, options)  # on the CPU, whatever options.device says
        from .inference.classifier import load_classifier

        return load_classifier(target, options)
    from .inference.shared_base import load_classifiers

    return load_classifiers(target if isinstance(target, Mapping) else list(target), options)


def check_openable(path: str | Path) -> None:
    """Fail with the one-line error now if `path` is neither a finished run nor a complete export: before a
    worker pool, a Ray cluster or a server starts."""
    if is_export(path):
        check_export(path)
    else:
        from .runs.run import Run

        Run.open(path)


def describe(path: str | Path) -> dict[str, Any]:
    """What /info tells of a run or an export: its recipe and its final evaluation."""
    if is_export(path):
        return export_info(path)
    from .runs.run import run_info

    return run_info(path)
