"""Train stage: the recipe, top to bottom. One `TrainRecipe` object holds the run's state; `train` calls its
stages in order, in the manner of torchtune's LoRA recipe:

    train(config)
      ├─ setup      refuse what must not be overwritten, find the checkpoint to resume; the data (data/), the
      │             TF-IDF baseline, the model with its head started from a linear probe and LoRA (modeling/),
      │             the schedule for this data's size (schedule.py), the tokenized splits: all that can fail
      │             on bad input, before any file is written
      ├─ fit        the HF Trainer over the tokenized splits, evaluating and checkpointing each epoch (trainer.py)
      ├─ report     the kept epoch's metrics, its outputs calibrated on the evaluation split, the examples after
      │             training, the run's record (report.py)
      └─ publish    the run written and swapped into place (runs/)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import set_seed

from ..config import MAX_LENGTH, TrainConfig
from ..data.duplicates import evaluation_overlap, overlap_text, text_hashes
from ..data.encoding import tokenize_dataset
from ..data.examples import example_texts, shown
from ..data.sizing import EVAL_FRACTION, LEARNING_RATE, MIN_STEPS, SMALL_SET_EPOCHS
from ..data.splits import LabeledData, load_labeled_data
from ..errors import UserError
from ..hub import is_local
from ..inference.classifier import Reading, predict_logits
from ..measure import Stages
from ..modeling import distributed
from ..modeling.device import default_device, resolve_precision
from ..modeling.model import ModelSetup, output_start, setup_model
from ..problems.intervals import comparison_text, paired_comparison, wilson
from ..problems.outputs import Prediction, format_table, predictions
from ..problems.space import LabelSpace, describe_weights, resolve_class_weights
from ..runs.run import RunMetrics, RunWorkspace, checkpoint_epoch, write_run
from ..runs.summary import (
    cross_validation_text,
    epochs_text,
    headline,
    out_of_sample_suffix,
    out_of_sample_text,
    per_label_lines,
)
from .baseline import BaselineScores, baseline_name, score_baseline
from .checks import check_train
from .folds import check_folds, cross_validate
from .memory import memory_callbacks
from .probe import start_head_at_probe
from .report import best_epoch_metrics, calibrated, epoch_history, example_rows, train_stats
from .schedule import EVAL_TO_DECIDE, Schedule, plan
from .tracking import tracked
from .trainer import EvalRecorder, Fitted, Hooks, StepTimer, build_trainer, weighted_loss

Log = Callable[[str], None]


@dataclass
class TrainResult:
    output_dir: Path
    metrics: RunMetrics
    space: LabelSpace
    # Wall seconds per stage of this call: data, baseline, model, train (the steps), evaluate (inside
    # training), report, save.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @property
    def before(self) -> list[dict[str, Any]]:
        return [row.model_dump() for row in self.metrics.examples.before]

    @property
    def after(self) -> list[dict[str, Any]]:
        return [row.model_dump() for row in self.metrics.examples.after]


def train(
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    log: Log = print,
    callbacks: Sequence[Any] = (),
    step_lines: bool = True,
    **settings: Any,
) -> TrainResult:
    """Fine-tune `config.model` with LoRA on `config.data`; write the run to `config.output_dir`.
    `settings`: TrainConfig's fields as keywords, over `config`'s (`train(data="reviews.csv", output_dir="runs/x")`).
    `callbacks`: extra TrainerCallbacks (tune's pruning reporter is one); `step_lines`: the Trainer's loss and
    evaluation lines on stdout (the runs inside `audit`, `--folds` and `tune` summarise themselves instead)."""
    recipe = TrainRecipe(train_config(config, settings), log, step_lines=step_lines)
    with recipe.workspace.claimed(recipe.main_process):
        recipe.setup()
        folders = (recipe.workspace.tensorboard_dir, recipe.workspace.final)
        with tracked(recipe.model.config, folders, recipe.main_process) as trackers:
            recipe.fit([*callbacks, *trackers.callbacks])
            recipe.cross_validate()
            recipe.report()
            if recipe.main_process:
                recipe.publish()
                trackers.finish(recipe.model.config, recipe.final, recipe.baseline, ok=True)
    distributed.barrier()  # rank 0 saves; the run is complete for every rank when it is done
    return TrainResult(recipe.workspace.final, recipe.metrics, recipe.space, recipe.stages.seconds)


def train_config(config: Any, settings: dict[str, Any] | None = None) -> TrainConfig:
    """A TrainConfig from one, a dict of its fields or keywords, validated as TrainConfig validates; anything else
    is a TypeError here, not an AttributeError on its first field deep inside training."""
    if config is None or isinstance(config, dict):
        return TrainConfig(**{**(config or {}), **(settings or {})})
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or a dict of its fields, not {type(config).__name__}")
    return TrainConfig(**{**config.model_dump(exclude_unset=True), **settings}) if settings else config


class TrainRecipe:
    """One training run's state, filled in stage by stage."""

    # setup
    resume_from: Path | None
    precision: str
    data: LabeledData
    text_hashes: tuple[np.ndarray, np.ndarray]  # the training and evaluation texts' (data/duplicates.py)
    overlap: dict[str, int]  # evaluation texts also in the training split
    weights: np.ndarray | None  # --class-weights
    baseline: dict[str, Any] | None
    baseline_scores: BaselineScores | None  # per text, for the paired comparison with the run
    model: ModelSetup
    schedule: Schedule
    train_tok: Any
    eval_tok: Any
    before: list[Prediction]
    # fit, report
    fitted: Fitted
    final: dict[str, Any]
    space: LabelSpace  # as it will predict (multi-label: with the thresholds chosen on the kept epoch)
    metrics: RunMetrics

    def __init__(self, config: TrainConfig, log: Log = print, *, step_lines: bool = True):
        self.requested = _with_absolute_model_path(config)  # what was asked, as `--resume` must match it
        self.step_lines = step_lines
        distributed.init(cpu=default_device().type == "cpu")
        self.main_process = distributed.is_main_process()
        self.log = log if self.main_process else _silent  # one run, one voice: rank 0 prints and writes
        self.workspace = RunWorkspace(Path(self.requested.output_dir).expanduser())
        # "folds" (--folds) joins when entered: the Seconds line of a run without it does not name it.
        self.stages = Stages("data", "baseline", "model", "train", "evaluate", "report", "save")
        self.folds: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Everything that can fail on bad input, before any file is written; then the run's place."""
        requested = self.requested
        self.resume_from = check_train(requested)
        self.precision = resolve_precision(requested.precision, default_device())
        with self.stages.timing("data"), distributed.main_process_first():
            self.data = load_labeled_data(requested, log=self.log)
        data = self.data
        self.log(f"Data: {len(data.train)} training and {len(data.eval)} evaluation texts; labels: "
                 f"{', '.join(data.label_names)}")  # fmt: skip
        problem, labels = data.space.problem, np.asarray(data.train["label"])
        for note in (problem.untrained_note(labels, data.space.names),
                     problem.skew_note(labels, data.space.names, requested.class_weights)):  # fmt: skip
            if note:
                self.log(note)
        # Hashed once: for the overlap here and the run's record of the texts it saw (publish).
        self.text_hashes = (text_hashes(data.train["text"]), text_hashes(data.eval["text"]))
        self.overlap = evaluation_overlap(data.train["text"], data.eval["text"], self.text_hashes)
        if self.overlap["in_training"]:
            self.log(overlap_text(self.overlap))
        if requested.folds is not None and distributed.world_size() > 1:
            raise UserError("--folds trains its runs in one process; drop it under torchrun (or run it alone)")
        check_folds(requested, np.asarray(data.train["label"]), data.space)
        self.weights = resolve_class_weights(requested.class_weights, data.space, np.asarray(data.train["label"]))
        self.example_texts, self.example_given = example_texts(requested, data)
        self.baseline_scores = None  # rank 0 fits the baseline; the other ranks have none to compare with
        with self.stages.timing("baseline"):
            self.baseline = self._fit_baseline() if self.main_process else None
        with self.stages.timing("model"):
            self._build_model()
        if self.before:  # none where the caller asked for no examples (a fold of `audit`, a trial of `tune`)
            self.log(format_table(_shortened(self.before), "Untrained model predictions:", given=self.example_given))
        if self.resume_from is None and self.main_process:
            self.workspace.start_fresh(requested)
        distributed.barrier()

    def _fit_baseline(self) -> dict[str, Any] | None:
        """TF-IDF + a linear model on the same splits, scored with the same metrics (--baseline none: skipped)."""
        config, data = self.requested, self.data
        if config.baseline == "none":
            return None
        try:
            fitted = score_baseline(data.train, data.eval, data.space, threshold=config.threshold, seed=config.seed,
                                    weights=self.weights)  # fmt: skip
        except ValueError as exc:  # e.g. texts with no word that two of them share: nothing for TF-IDF to learn
            self.log(f"Baseline skipped: {exc}")
            return None
        self.baseline_scores, scores = fitted, fitted.metrics
        weighted = ", weighted as the run" if fitted.weighted else ""
        self.log(f"Baseline ({baseline_name(data.space)}{weighted}): {headline(scores, data.space)} in "
                 f"{scores['seconds']:.1f} s")  # fmt: skip
        return scores

    def _build_model(self) -> None:
        requested, data = self.requested, self.data
        set_seed(requested.seed)  # the fresh classification head is initialised from this seed
        start = output_start(data.space, np.asarray(data.train["label"]))
        probe = self._probe if requested.head_init == "probe" and self.resume_from is None else None
        usual = {"learning_rate": LEARNING_RATE, "eval_fraction": EVAL_FRACTION, "max_length": MAX_LENGTH}
        # (the share held out is said only where one was: beside a given evaluation split it reads as a contradiction)
        small = {k: v for k, v in data.sized.items() if v != usual[k] and (k != "eval_fraction" or data.carved)}
        if small:
            chosen = [f"learning rate {small['learning_rate']:g}"] if "learning_rate" in small else []
            chosen += [f"{small['eval_fraction']:.1%} held out for evaluation"] if "eval_fraction" in small else []
            chosen += [f"{small['max_length']} tokens a text, as every step reads them all"] if \
                "max_length" in small else []  # fmt: skip
            flags = [f for f, k in (("--learning-rate", "learning_rate"), ("--eval-fraction", "eval_fraction"),
                                   ("--max-length", "max_length")) if k in small]  # fmt: skip
            self.log(f"Small training set ({SMALL_SET_EPOCHS} or more passes to reach {MIN_STEPS} steps): "
                     f"{', '.join(chosen)} ({', '.join(flags)} to choose).")  # fmt: skip
        sized = requested.model_copy(update={**data.sized, "examples": self.example_texts})
        self.model = setup_model(sized, data.space, self.precision, self.log, output_start=start, start_head=probe)
        self.schedule = plan(self.model.config, len(data.train), len(data.eval), distributed.world_size(),
                             data.space.problem.min_steps or MIN_STEPS)  # fmt: skip
        self.log(f"Schedule: {self.schedule.describe()}.")
        if len(data.eval) < EVAL_TO_DECIDE:
            self.log(self._small_eval_note())
        with distributed.main_process_first():
            self.train_tok = tokenize_dataset(self.data.train, self.model.encoder)
            # Evaluation order does not change its metrics; sorted by length, its batches carry little padding.
            # `row`: each text's place in the split, to pair the run's scores with the baseline's.
            # (A stable argsort, not Dataset.sort: that passes pyarrow 25+ an option it warns about to API users.)
            self.eval_tok = tokenize_dataset(self.data.eval, self.model.encoder)
            longest_first = np.argsort(-np.asarray(self.eval_tok["length"]), kind="stable")
            self.eval_tok = self.eval_tok.add_column("row", list(range(len(self.eval_tok)))).select(longest_first)
        self.before = self._examples(self.data.space)

    def _probe(self, model: Any, encoder: Any) -> None:
        """LP-FT's first step (training/probe.py): the output layer set to a linear probe of the frozen encoder."""
        data, started = self.data, time.perf_counter()
        examples = (list(data.train["text"]), np.asarray(data.train["label"]))
        read = start_head_at_probe(model, encoder, examples, data.space.problem, self.precision, self.requested.seed)
        self.log(f"Head started from a linear probe on {read} training texts ({time.perf_counter() - started:.1f} s).")

    def _small_eval_note(self) -> str:
        n = len(self.data.eval)
        low, high = wilson(0.8 * n, n)
        choice = ("so the schedule is fixed and the last state kept" if self.schedule.keep == "last" else
                  "so keeping the best of its evaluations picks on noise (--epochs auto keeps the last)")  # fmt: skip
        texts = f"{n} text{'s' if n != 1 else ''}"
        return (f"Note: the evaluation split has {texts}; an accuracy of 0.80 on it means {low:.2f}-{high:.2f} "
                f"(95 %), too wide to tell epochs apart, {choice}. For scores to trust, give --eval-data with "
                f"{EVAL_TO_DECIDE} or more labelled texts" + ("." if self.requested.folds else ", or --folds 5 to "
                "score every training text by cross-validation."))  # fmt: skip

    # -------------------------------------------------------------------------------------------------- fit

    def fit(self, callbacks: Sequence[Any] = ()) -> None:
        """The Trainer over the tokenized splits, evaluating and checkpointing each epoch."""
        config, space, log = self.model.config, self.data.space, self.log
        recorder, timer = EvalRecorder(space, config.threshold), StepTimer()
        memory = memory_callbacks()
        steps = [timer.callback(), *memory, *callbacks]
        hooks = Hooks(recorder, steps, weighted_loss(space, self.weights), step_lines=self.step_lines)
        trainer = build_trainer(self.model, (self.train_tok, self.eval_tok), self.workspace.checkpoints,
                                self.precision, hooks, self.schedule)  # fmt: skip
        recorder.trainer = trainer
        if self.weights is not None:
            log("Class weights: " + describe_weights(dict(zip(space.names, self.weights.tolist()))))
        resume = self.resume_from
        if resume is not None:
            log(f"Resuming from {resume.name} (epoch {checkpoint_epoch(resume):g} of {self.schedule.epochs:g}).")
        ranks, device = distributed.world_size(), default_device().type
        where = f"{ranks} processes on {device} (batch size {config.batch_size} per process)" if ranks > 1 else device
        log(f"Training on {where} in {self.precision} for {epochs_text(self.schedule.epochs)}.")
        with self.stages.timing("train"):
            try:
                output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            finally:
                for kept in memory:
                    kept.release()
        self.fitted = Fitted(trainer, recorder, timer, output.metrics.get("train_runtime"), self.schedule.keep)
        self.stages.seconds["evaluate"] = timer.evaluation_seconds
        self.stages.seconds["train"] -= timer.evaluation_seconds

    def cross_validate(self) -> None:
        """--folds K: the recipe scored on every training text by K more runs (folds.py); after the kept model's
        training, so a resumed run finds its finished folds in the checkpoints folder."""
        if self.requested.folds is None or not self.main_process:
            return
        with self.stages.timing("folds"):
            data = self.data
            folder = self.workspace.checkpoints / "cross-validation"
            self.folds = cross_validate(self.model.config, (data.train, data.eval), data.space, folder, train, self.log)
        self.log(cross_validation_text(self.folds, self.data.space))

    # ----------------------------------------------------------------------------------------------- report

    def report(self) -> None:
        """The kept epoch's metrics and the run's record: history, statistics, the examples before and after."""
        with self.stages.timing("report"):
            kept, calibration = calibrated(best_epoch_metrics(self.fitted, self.eval_tok), self.model.config)
            self.log(calibration)
            self.final, self.space = kept.final, kept.space
            after = self._examples(self.space)
            if after:
                self.log(format_table(_shortened(after), "Trained model predictions:", given=self.example_given))
            state = self.fitted.trainer.state
            self.metrics = RunMetrics.model_validate({
                "final": self.final,
                "history": epoch_history(state.log_history),
                "train": train_stats(self.fitted, self.model, self.data, self.train_tok, self.precision,
                                     self.weights),
                "examples": {"before": example_rows(self.before, self.example_given),
                             "after": example_rows(after, self.example_given)},
                "log_history": state.log_history,
            })  # fmt: skip
            self.metrics.overlap = self.overlap
            if self.folds is not None:
                self.metrics.cross_validation = self.folds
            if self.baseline_scores is not None:  # the same texts, the baseline's rows put in the run's order
                theirs = self.baseline_scores
                rows = np.asarray(self.eval_tok["row"])
                config, scores = self.model.config, theirs.scores[rows]
                # Thresholds tuned on these texts: both decided out of sample, by the same fifths of the same rows.
                decided = kept.space.problem.decided_out_of_sample(kept.labels, scores, config.threshold, config.seed)
                if decided is not None:
                    self.baseline["out_of_sample"] = decided
                self.metrics.comparison = paired_comparison(
                    kept.space, kept.labels, kept.scores, scores, theirs.space,
                    tuned_on=config.seed if config.threshold is None else None,
                )  # fmt: skip
            self.metrics.baseline = self.baseline

    # ---------------------------------------------------------------------------------------------- publish

    def publish(self) -> None:
        """Every file of the run, built aside and swapped into place (rank 0 only)."""
        model, space, metrics = self.model, self.space, self.metrics
        with self.stages.timing("save"):
            seen = self.text_hashes
            self.workspace.publish(lambda folder: write_run(folder, model, space, metrics, seen))
        final, baseline, log = self.final, self.baseline, self.log
        n = len(self.data.eval)
        log(f"{headline(final, space)} on {n} evaluation text{'s' if n != 1 else ''}. Saved to {self.workspace.final}")
        if final.get("out_of_sample"):
            log(out_of_sample_text(final, space))
        if baseline:
            log(f"Baseline ({baseline_name(space)}) on the same texts: {headline(baseline, space)}"
                f"{out_of_sample_suffix(baseline, space)}")  # fmt: skip
        if metrics.comparison:
            log(comparison_text(metrics.comparison, "The run", "the baseline"))
        log(per_label_lines(final, space))

    def _examples(self, space: LabelSpace) -> list[Prediction]:
        texts = self.model.config.examples
        logits = predict_logits(self.model.model, self.model.encoder, texts, Reading(precision=self.precision))
        return predictions(texts, space.scores(logits), space)


def _with_absolute_model_path(config: TrainConfig) -> TrainConfig:
    # A run must still find its base model when loaded from another working directory.
    if not is_local(config.model):
        return config
    return config.model_copy(update={"model": str(Path(config.model).expanduser().resolve())})


def _shortened(examples: list[Prediction]) -> list[Prediction]:
    return [p.model_copy(update={"text": shown(p.text)}) for p in examples]


def _silent(message: str) -> None:
    pass
