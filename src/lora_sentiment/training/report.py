"""What a finished training run records (metrics.json): the kept epoch's scores from the evaluation the Trainer
already made, the per-epoch history, throughput statistics, and the example predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..problems.abstention import risk_coverage
from ..problems.calibration import MIN_TEXTS, calibrate, logits_from_scores
from ..problems.intervals import metric_intervals
from ..problems.metrics import evaluation_metrics
from ..problems.outputs import Prediction
from ..problems.space import LabelSpace
from .trainer import logits_of

if TYPE_CHECKING:
    from ..data.splits import LabeledData
    from ..modeling.model import ModelSetup
    from .trainer import Fitted


def example_rows(predictions: Sequence[Prediction], given: Sequence[str] | None) -> list[dict[str, Any]]:
    """metrics.json's examples: each text's answer and probabilities, and the label it was given where it was drawn
    from the evaluation split (data/examples.py)."""
    rows = []
    for i, prediction in enumerate(predictions):
        rounded = {name: round(value, 6) for name, value in (prediction.probabilities or {}).items()}
        rows.append({"text": prediction.text, "label": prediction.answer, "probabilities": rounded,
                     **({"given": given[i]} if given else {})})  # fmt: skip
    return rows


def train_stats(
    fitted: Fitted, setup: ModelSetup, data: LabeledData, train_tok: Any, precision: str, weights: Any = None
) -> dict:
    """`weights`: the loss's weight per label (--class-weights resolved; None: unweighted), kept by name so a run
    trained with `auto` says what that meant for its data."""
    epochs_done, seconds = fitted.trainer.state.epoch or 0.0, fitted.timer.seconds
    lengths = list(train_tok["length"])
    real_tokens = int(sum(lengths))
    return {
        "runtime_s": fitted.runtime_s,
        "step_seconds": seconds,
        "samples_per_second": epochs_done * len(train_tok) / seconds if seconds else None,
        "real_tokens_per_second": epochs_done * real_tokens / seconds if seconds else None,
        "real_tokens_per_epoch": real_tokens,
        "squared_lengths_per_epoch": int(sum(n * n for n in lengths)),
        "epochs": epochs_done,
        "max_length": setup.config.max_length,
        "train_samples": len(data.train),
        "dropped_empty": data.dropped_empty,
        "precision": precision,
        "added_pad_token": setup.added_pad_token,
        "class_weights": None if weights is None else dict(zip(data.space.names, np.round(weights, 6).tolist())),
        "kept": fitted.keep,
        "trainable_parameters": setup.parameters.trainable,
        "total_parameters": setup.parameters.total,
    }


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluation: the epoch's mean logged training loss beside its eval metrics."""
    rows, losses = [], []
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            losses.append(entry["loss"])
        elif "eval_loss" in entry:
            row = {"epoch": round(entry["epoch"], 4), "step": entry["step"]}
            row["train_loss"] = float(np.mean(losses)) if losses else None
            row.update(
                {
                    k.removeprefix("eval_"): v
                    for k, v in entry.items()
                    if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))
                }
            )
            rows.append(row)
            losses = []
    return rows


@dataclass
class Kept:
    """The kept state's evaluation: its metrics (with 95 % intervals), the label space as it will predict, and
    the labels and scores they came from (rows in the tokenized evaluation split's order)."""

    final: dict[str, Any]
    space: LabelSpace
    labels: np.ndarray
    scores: np.ndarray


def best_epoch_metrics(fitted: Fitted, eval_tok: Any) -> Kept:
    """The final report: the metrics of the kept state (the best checkpoint, which the Trainer has loaded at the
    end, or with a fixed schedule the last), and the
    label space as it will predict (multi-label: with the thresholds chosen on that evaluation). Its scores are
    reused; those of an evaluation made before an interruption were not kept, so then it is evaluated again."""
    trainer, recorder = fitted.trainer, fitted.recorder
    eval_entries = [e for e in trainer.state.log_history if "eval_loss" in e]
    last_step = eval_entries[-1]["step"]
    best_step = last_step if fitted.keep == "last" else trainer.state.best_global_step or last_step
    best_eval = next(e for e in eval_entries if e["step"] == best_step)
    scores, labels = recorder.by_step.get(best_step), recorder.labels
    if scores is None:
        output = trainer.predict(eval_tok)
        scores, labels = recorder.space.scores(logits_of(output.predictions)), np.asarray(output.label_ids)
    space = recorder.decided(labels, scores)
    final = evaluation_metrics(space, labels, scores, detailed=True)
    final.update(loss=best_eval["eval_loss"], epoch=best_eval["epoch"], samples=len(eval_tok),
                 intervals=metric_intervals(space, labels, scores))  # fmt: skip
    _with_risk_coverage(final, space, labels, scores)
    return Kept(final, space, labels, scores)


def _with_risk_coverage(final: dict[str, Any], space: LabelSpace, labels: np.ndarray, scores: np.ndarray) -> None:
    curve = risk_coverage(space, labels, scores)
    if curve is not None:
        final["risk_coverage"] = curve


def calibrated(kept: Kept, config: Any) -> tuple[Kept, str]:
    """The kept state with its outputs calibrated on the evaluation split (problems/calibration.py), its metrics
    computed again on the calibrated scores (multi-label: thresholds tuned again on them, and the scores of
    thresholds tuned on other rows beside them), and the log's line."""
    kept, line = _calibrated(kept, config)
    out_of_sample = kept.space.problem.decided_out_of_sample(kept.labels, kept.scores, config.threshold, config.seed)
    if out_of_sample is not None:
        kept.final["out_of_sample"] = out_of_sample
    return kept, line


def _calibrated(kept: Kept, config: Any) -> tuple[Kept, str]:
    from ..runs.summary import calibration_text

    n = len(kept.labels)
    if config.calibration == "none":
        return kept, "Calibration: none (--calibration none): outputs are the model's own."
    if n < MIN_TEXTS:
        return kept, (f"Calibration: none; the evaluation split has {n} texts and a calibration needs {MIN_TEXTS} "
                      "or more (give --eval-data).")  # fmt: skip
    fitted, report = calibrate(kept.space, kept.labels, kept.scores, config.interval_coverage)
    if fitted is None:  # the raw outputs did as well out of sample: kept as they are, and the record says why
        kept.final["calibration"] = report
        return kept, calibration_text(report)
    space = replace(kept.space, calibration=fitted)
    scores = space.scores(logits_from_scores(kept.space, kept.scores))
    space = space.problem.decided(space, kept.labels, scores, config.threshold)
    final = evaluation_metrics(space, kept.labels, scores, detailed=True)
    final.update({key: kept.final[key] for key in ("loss", "epoch", "samples")},
                 intervals=metric_intervals(space, kept.labels, scores), calibration=report)  # fmt: skip
    _with_risk_coverage(final, space, kept.labels, scores)
    return Kept(final, space, kept.labels, scores), calibration_text(report)
