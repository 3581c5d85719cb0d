"""Evaluate stage: a loaded run or export scored on any labelled file, folder or hub split, with the run's
own metrics. Shared by the torch Classifier and the ONNX one, so it imports neither torch nor onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .data import drop_empty_texts, load_splits, select_text_label, stratified_sample
from .errors import UserError
from .labels import encode_targets
from .metrics import evaluation_metrics


def evaluate_on(
    classifier: Any,
    data: str,
    *,
    split: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    label_columns: Sequence[str] | None = None,
    label_separator: str | None = None,
    max_samples: int | None = None,
    batch_size: int | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Labels may be ids or the run's label names. Multi-label runs read tags the way they were trained
    (their --label-columns / --label-separator) unless told otherwise."""
    config, space = classifier.run_config, classifier.space
    label_columns = label_columns or (config.label_columns if config else None)
    separator = label_separator if label_separator is not None else (config.label_separator if config else None)
    ds = select_text_label(pick_split(load_splits(data), split, data), text_column, label_column, data, label_columns)
    ds, dropped = drop_empty_texts(ds, data)
    ds, _ = encode_targets(ds, space.problem_type, data, space=space, separator=separator)
    ds = stratified_sample(ds, max_samples, seed)
    scores = classifier.predict_scores(ds["text"], batch_size)
    metrics = evaluation_metrics(space, np.asarray(ds["label"]), scores, detailed=True)
    metrics.update(samples=len(ds), dropped_empty=dropped)
    return metrics


def pick_split(splits: Any, split: str | None, data: str) -> Any:
    """The named split, else the first of test / validation / train that exists."""
    if split is None:
        split = next((s for s in ("test", "validation", "train") if s in splits), next(iter(splits)))
    if split not in splits:
        raise UserError(f"split {split!r} not in {data}; splits are: {', '.join(splits)} (set --split)")
    return splits[split]
