"""Evaluate stage: a loaded run or export scored on any labelled file, folder or hub split, with the run's
own metrics. Shared by the torch Classifier and the ONNX one, so it imports neither torch nor onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.loading import load_splits
from ..data.splits import drop_empty_texts, encode_quietly, select_text_label, stratified_sample
from ..data.tables import column_to_read
from ..errors import UserError
from ..options import EvalOptions
from ..problems.abstention import selective_metrics
from ..problems.calibration import quality_on
from ..problems.intervals import metric_intervals
from ..problems.metrics import evaluation_metrics
from ..problems.space import LabelSpace
from ..runs.seen import seen_counts

if TYPE_CHECKING:
    from .base import Predictor


def evaluate_on(predictor: Predictor, data: str, options: EvalOptions | None = None) -> dict[str, Any]:
    """Labels may be ids or the run's label names. Multi-label runs read tags the way they were trained
    (their --label-columns / --label-separator) unless told otherwise."""
    options = options or EvalOptions()
    return score_rows(predictor, labelled_rows(data, options, predictor.run_config, predictor.space), options)


@dataclass
class LabelledRows:
    """A labelled file read and encoded for one run's labels, before any model is loaded."""

    dataset: Any
    dropped_empty: int


def labelled_rows(data: str, options: EvalOptions, config: Any, space: LabelSpace) -> LabelledRows:
    """`data` read with the run's column and label settings (`config`: its TrainConfig, if known) unless `options`
    say otherwise, and encoded to `space`: what `evaluate` reads first, so a bad file fails before a model loads."""
    label_columns = options.label_columns or (config.label_columns if config else None)
    separator = options.label_separator
    if separator is None and config is not None:
        separator = config.label_separator
    splits = pick_split(load_splits(data), options.split, data)
    columns = splits.column_names
    text = column_to_read(options.text_column, [config and config.text_column], "text", columns, "--text-column", data)
    label = None
    if not label_columns:
        trained = [config and config.label_column]
        label = column_to_read(options.label_column, trained, "label", columns, "--label-column", data)
    ds = select_text_label(splits, text, label, data, label_columns)
    ds, dropped = drop_empty_texts(ds, data)
    ds, _ = encode_quietly(ds, space.problem_type, data, space=space, separator=separator)
    return LabelledRows(stratified_sample(ds, options.max_samples, options.seed), dropped)


def score_rows(predictor: Predictor, rows: LabelledRows, options: EvalOptions) -> dict[str, Any]:
    return scored_rows(predictor, rows, options)[0]


def scored_rows(predictor: Predictor, rows: LabelledRows, options: EvalOptions) -> tuple[dict[str, Any], np.ndarray]:
    """The metrics (with 95 % intervals on the headline ones) and the scores per row."""
    ds = rows.dataset
    scores = predictor.predict_scores(ds["text"], options.batch_size)
    labels = np.asarray(ds["label"])
    metrics = evaluation_metrics(predictor.space, labels, scores, detailed=True)
    metrics.update(samples=len(ds), dropped_empty=rows.dropped_empty,
                   intervals=metric_intervals(predictor.space, labels, scores))  # fmt: skip
    quality = quality_on(predictor.space, labels, scores)
    if quality:
        metrics["calibration"] = quality
    rule = getattr(predictor, "abstention", None)
    if rule is not None and rule.active:
        metrics["abstention"] = selective_metrics(predictor.space, labels, scores, rule)
    seen = seen_counts(getattr(predictor, "run_path", None), ds["text"])
    if seen is not None:
        metrics["seen"] = seen
    return metrics, scores


def pick_split(splits: Any, split: str | None, data: str) -> Any:
    """The named split, else the first of test / validation / train that exists."""
    if split is None:
        split = next((s for s in ("test", "validation", "train") if s in splits), next(iter(splits)))
    if split not in splits:
        raise UserError(f"split {split!r} not in {data}; splits are: {', '.join(splits)} (set --split)")
    return splits[split]
