"""Train stage: the recipe end to end — prepare the run's place, set up data and model, fit with the HF
Trainer, report, publish.

    train(config)
      ├─ RunWorkspace.prepare   refuse what must not be overwritten; find the checkpoint to resume
      ├─ load_labeled_data      the splits (data.py)
      ├─ setup_model            tokenizer, classifier, LoRA, and the config as it runs (model.py)
      ├─ fit                    the Trainer over the tokenized splits
      └─ report, publish        metrics of the kept epoch; the run written and swapped into place (run.py)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from . import distributed
from .baseline import baseline_name, evaluate_baseline
from .config import TrainConfig
from .data import LabeledData, load_labeled_data, padded_batch, tokenize_dataset
from .device import default_device, pad_multiple, resolve_precision, synchronize
from .hub import is_local
from .measure import Stages
from .metrics import LOWER_IS_BETTER, evaluation_metrics, tune_thresholds
from .model import ModelSetup, output_start, setup_model
from .outputs import Prediction, format_table, predictions
from .plots import headline, per_label_lines
from .prediction import predict_logits
from .problem import LabelSpace, resolve_class_weights
from .run import RunMetrics, RunWorkspace, checkpoint_epoch, write_run
from .tracking import check_trackers, tracked

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


def train(config: TrainConfig, *, log: Log = print, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune `config.model` with LoRA on `config.data`; write the run to `config.output_dir`.
    `callbacks`: extra TrainerCallbacks (tune's pruning reporter is one)."""
    requested = _with_absolute_model_path(config)  # what was asked, as `--resume` must match it
    distributed.init(cpu=default_device().type == "cpu")
    main_process = distributed.is_main_process()
    log = log if main_process else _silent  # one run, one voice: rank 0 prints and writes
    workspace = RunWorkspace(Path(requested.output_dir).expanduser())
    resume_from = workspace.prepare(requested)
    check_trackers(requested)
    precision = resolve_precision(requested.precision, default_device())
    stages = Stages("data", "baseline", "model", "train", "evaluate", "report", "save")
    ready = _prepare(requested, precision, stages, log)  # all that can fail on bad input, before any write

    if resume_from is None and main_process:
        workspace.start_fresh(requested)
    distributed.barrier()
    setup, data = ready.setup, ready.data
    with tracked(setup.config, (workspace.tensorboard_dir, workspace.final), main_process) as trackers:
        with stages.timing("train"):
            fitted = fit(
                setup, data.space, ready.weights, ready.train_tok, ready.eval_tok, precision, workspace, resume_from,
                log, [*callbacks, *trackers.callbacks],
            )  # fmt: skip
        stages.seconds["evaluate"] = fitted.timer.evaluation_seconds
        stages.seconds["train"] -= fitted.timer.evaluation_seconds
        with stages.timing("report"):
            final, space = best_epoch_metrics(fitted, ready.eval_tok)
            after = _predict_examples(setup, precision, space)
            log(format_table(after, "Trained model predictions:"))
            metrics = report(fitted, final, setup, data, ready.train_tok, precision, ready.before, after)
            metrics.baseline = ready.baseline
        if main_process:
            with stages.timing("save"):
                _publish(workspace, setup, space, metrics)
            _log_outcome(log, final, ready.baseline, space, len(data.eval), workspace.final)
            trackers.finish(setup.config, final, ready.baseline, ok=True)
    distributed.barrier()  # rank 0 saves; the run is complete for every rank when it is done
    return TrainResult(workspace.final, metrics, space, stages.seconds)


@dataclass
class _Prepared:
    data: LabeledData
    weights: np.ndarray | None
    baseline: dict[str, Any] | None
    setup: ModelSetup
    train_tok: Any
    eval_tok: Any
    before: list[Prediction]


def _prepare(requested: TrainConfig, precision: str, stages: Stages, log: Log) -> _Prepared:
    """Data, baseline, model and tokenized splits: everything that can fail on bad input."""
    with stages.timing("data"), distributed.main_process_first():
        data = load_labeled_data(requested, log=log)
    log(
        f"Data: {len(data.train)} training and {len(data.eval)} evaluation texts; labels: {', '.join(data.label_names)}"
    )
    weights = resolve_class_weights(requested.class_weights, data.space, np.asarray(data.train["label"]))
    with stages.timing("baseline"):
        baseline = run_baseline(requested, data, log) if distributed.is_main_process() else None
    set_seed(requested.seed)  # the fresh classification head is initialised from this seed
    start = output_start(data.space, np.asarray(data.train["label"]))
    with stages.timing("model"):
        setup = setup_model(requested, data.space, precision, log, output_start=start)
        with distributed.main_process_first():
            train_tok = tokenize_dataset(data.train, setup.encoder)
            # Evaluation order does not change its metrics; sorted by length, its batches carry little padding.
            eval_tok = tokenize_dataset(data.eval, setup.encoder).sort("length", reverse=True)
        before = _predict_examples(setup, precision, data.space)
    log(format_table(before, "Untrained model predictions:"))
    return _Prepared(data, weights, baseline, setup, train_tok, eval_tok, before)


def _log_outcome(log: Log, final: dict, baseline: dict | None, space: LabelSpace, count: int, where: Path) -> None:
    log(f"{headline(final, space)} on {count} evaluation texts. Saved to {where}")
    if baseline:
        log(f"Baseline ({baseline_name(space)}) on the same texts: {headline(baseline, space)}")
    log(per_label_lines(final, space))


def _publish(workspace: RunWorkspace, setup: ModelSetup, space: LabelSpace, metrics: RunMetrics) -> None:
    workspace.publish(
        lambda folder: write_run(
            folder,
            model=setup.model,
            tokenizer=setup.tokenizer,
            config=setup.config,
            space=space,
            metrics=metrics,
            parameters=setup.parameters,
        )  # fmt: skip
    )


def run_baseline(config: TrainConfig, data: LabeledData, log: Log) -> dict[str, Any] | None:
    """TF-IDF + a linear model on the same splits, scored with the same metrics (--baseline none: skipped)."""
    if config.baseline == "none":
        return None
    train_labels, eval_labels = np.asarray(data.train["label"]), np.asarray(data.eval["label"])
    try:
        scores = evaluate_baseline(
            data.train["text"], train_labels, data.eval["text"], eval_labels, data.space, threshold=config.threshold,
            seed=config.seed,
        )  # fmt: skip
    except ValueError as exc:  # e.g. texts with no word that two of them share: nothing for TF-IDF to learn
        log(f"Baseline skipped: {exc}")
        return None
    log(f"Baseline ({baseline_name(data.space)}): {headline(scores, data.space)} in {scores['seconds']:.1f} s")
    return scores


def _with_absolute_model_path(config: TrainConfig) -> TrainConfig:
    # A run must still find its base model when loaded from another working directory.
    if not is_local(config.model):
        return config
    return config.model_copy(update={"model": str(Path(config.model).expanduser().resolve())})


def _predict_examples(setup: ModelSetup, precision: str, space: LabelSpace) -> list[Prediction]:
    texts = setup.config.examples
    logits = predict_logits(setup.model, setup.encoder, texts, precision=precision)
    return predictions(texts, space.scores(logits), space)


def _silent(message: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------ fit


@dataclass
class Fitted:
    trainer: Any
    recorder: _EvalRecorder
    timer: StepTimer
    runtime_s: float | None


def fit(
    setup: ModelSetup,
    space: LabelSpace,
    weights: np.ndarray | None,
    train_tok: Any,
    eval_tok: Any,
    precision: str,
    workspace: RunWorkspace,
    resume_from: Path | None,
    log: Log,
    extra_callbacks: Sequence[Any] = (),
) -> Fitted:
    """The Trainer over the tokenized splits, evaluating and checkpointing each epoch."""
    config = setup.config
    recorder, timer = _EvalRecorder(space, config.threshold), StepTimer()
    callbacks: list[Any] = [timer.callback(), *extra_callbacks]
    trainer = build_trainer(
        setup.model, setup.tokenizer, train_tok, eval_tok, config, workspace.checkpoints, precision, recorder,
        callbacks, loss=weighted_loss(space, weights),
    )  # fmt: skip
    if weights is not None:
        log("Class weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(space.names, weights)))
    recorder.trainer = trainer
    if resume_from is not None:
        log(f"Resuming from {resume_from.name} (epoch {checkpoint_epoch(resume_from):g} of {config.epochs:g}).")
    ranks, device = distributed.world_size(), default_device().type
    where = f"{ranks} processes on {device} (batch size {config.batch_size} per process)" if ranks > 1 else device
    log(f"Training on {where} in {precision} for {config.epochs:g} epochs.")
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return Fitted(trainer, recorder, timer, output.metrics.get("train_runtime"))


class _Trainer(Trainer):
    """The Trainer, evaluating with SDPA attention where `--attention auto` picked eager attention for training.

    Eager attention is chosen only for its faster backward pass (small heads, short inputs on a CPU, see
    model.resolve_attention); evaluation has no backward pass, and SDPA runs it faster, as prediction does."""

    eval_attention: str | None = None

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        training_attention = base.config._attn_implementation
        if self.eval_attention is None or self.eval_attention == training_attention:
            return super().evaluate(*args, **kwargs)
        try:
            base.set_attn_implementation(self.eval_attention)
        except (ValueError, ImportError):  # an architecture without it evaluates as it trains
            return super().evaluate(*args, **kwargs)
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            base.set_attn_implementation(training_attention)


class FastPadding(DataCollatorWithPadding):
    """DataCollatorWithPadding's batches, padded with numpy: its tokenizer.pad walks every row in Python, which
    at a GPU's batch sizes takes as long as a training step and keeps the device waiting."""

    LABEL_KEYS = ("label", "labels", "label_ids")
    PADDED_KEYS = ("input_ids", "attention_mask", "token_type_ids")

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [k for k in features[0] if k not in self.LABEL_KEYS]
        if any(k not in self.PADDED_KEYS for k in keys):
            return super().__call__(features)  # inputs it knows how to pad and we do not
        encoded = {k: [f[k] for f in features] for k in keys}
        left = self.tokenizer.padding_side == "left"
        arrays = padded_batch(encoded, np.arange(len(features)), self.tokenizer.pad_token_id or 0, left,
                              self.pad_to_multiple_of)  # fmt: skip
        batch: dict[str, Any] = {k: torch.from_numpy(v) for k, v in arrays.items()}
        label_key = next((k for k in self.LABEL_KEYS if k in features[0]), None)
        if label_key is not None:
            batch["labels"] = torch.tensor([f[label_key] for f in features])
        return batch


def build_trainer(
    model: Any,
    tokenizer: Any,
    train_ds: Any,
    eval_ds: Any,
    config: TrainConfig,
    work_dir: Path,
    precision: str,
    compute_metrics: Any = None,
    callbacks: Sequence[Any] = (),
    loss: Callable[..., Any] | None = None,
) -> Any:
    """The one place a Trainer is configured for this project. `loss` replaces the model's own loss (the
    weighted one of --class-weights); training stays the Trainer's own loop either way."""
    callbacks = list(callbacks)
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = _Trainer(
        model=model,
        args=training_arguments(config, len(train_ds), work_dir, precision),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=FastPadding(tokenizer, pad_to_multiple_of=pad_multiple(default_device())),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        compute_loss_func=loss,
    )
    # The Trainer takes any forward(**kwargs) to compute a loss already normalised by the tokens of the whole
    # step, and so multiplies the loss by the process count and skips dividing by the accumulation steps.
    # Sequence-classification heads return a plain per-batch mean: without this, 2 processes would report
    # (and clip) twice the loss, and gradient accumulation would sum gradients instead of averaging them.
    # The same holds for `loss`: it returns a per-batch mean, which the Trainer must still divide by the
    # accumulation steps (and, with average_tokens_across_devices off, not multiply by the process count).
    trainer.model_accepts_loss_kwargs = False
    trainer.loss_is_scaled_for_ga = False
    trainer.eval_attention = "sdpa" if config.attention == "auto" else None
    return trainer


def training_arguments(config: TrainConfig, train_rows: int, work_dir: Path, precision: str) -> TrainingArguments:
    steps_per_epoch = max(1, -(-train_rows // (config.batch_size * config.gradient_accumulation_steps)))
    on_gpu = default_device().type == "cuda"
    return TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of all steps
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 5),
        load_best_model_at_end=True,
        metric_for_best_model=config.metric_for_best_model,
        greater_is_better=config.metric_for_best_model not in LOWER_IS_BETTER,
        average_tokens_across_devices=False,
        save_total_limit=2,
        seed=config.seed,
        use_cpu=default_device().type == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to="none",
        disable_tqdm=False,
        # On a GPU, batches are prepared by two worker processes while a step runs, so the device does not wait
        # for them; on a CPU the same cores would be taken from the step itself.
        dataloader_num_workers=2 if on_gpu else 0,
        dataloader_persistent_workers=on_gpu,
        ddp_find_unused_parameters=False,  # LoRA and the head are used in every forward pass
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )


class _EvalRecorder:
    """compute_metrics that also keeps each evaluation's scores by training step, so the final report (per-label
    table, confusion matrix, ROC-AUC, tuned thresholds) comes from the kept epoch without another pass."""

    def __init__(self, space: LabelSpace, threshold: float | None) -> None:
        self.space = space
        self.threshold = threshold
        self.by_step: dict[int, np.ndarray] = {}
        self.labels: np.ndarray | None = None
        self.trainer: Any = None  # set once the Trainer exists: it knows the step being evaluated

    def __call__(self, eval_prediction: Any) -> dict[str, float]:
        scores = self.space.scores(_logits(eval_prediction.predictions))
        self.by_step[self.trainer.state.global_step] = scores
        self.labels = np.asarray(eval_prediction.label_ids)
        return evaluation_metrics(self.decided(self.labels, scores), self.labels, scores, detailed=False)

    def decided(self, labels: np.ndarray, scores: np.ndarray) -> LabelSpace:
        """The label space with its decision thresholds: --threshold for every tag, else each tag's best on
        these evaluation rows (the same rule each epoch, so the kept epoch is picked by what will be used)."""
        if self.space.problem_type != "multi-label":
            return self.space
        if self.threshold is not None:
            thresholds = [self.threshold] * len(self.space.names)
        else:
            thresholds = tune_thresholds(labels, scores).tolist()
        return LabelSpace("multi-label", self.space.names, thresholds)


def _logits(predictions: Any) -> np.ndarray:
    return np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions, dtype=np.float64)


def weighted_loss(space: LabelSpace, weights: np.ndarray | None) -> Callable[..., torch.Tensor] | None:
    """--class-weights as the Trainer's compute_loss_func: weighted cross-entropy, or BCE with a positive
    weight per tag. None (the model's own loss) when unweighted."""
    if weights is None:
        return None
    weight = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"].float()
        if space.problem_type == "multi-label":
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight.to(logits.device))
        return F.cross_entropy(logits, labels.long(), weight=weight.to(logits.device))

    return loss


class StepTimer:
    """Wall time of the training steps alone (data loading included, evaluation and checkpointing not),
    so throughput figures are not diluted by the per-epoch evaluation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.evaluation_seconds = 0.0  # the evaluations of this call (a resumed run's history has earlier ones)
        self._mark: float | None = None

    def callback(self) -> TrainerCallback:
        timer = self

        class _Callback(TrainerCallback):
            def on_epoch_begin(self, args, state, control, **kwargs):
                timer._mark = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                synchronize()
                now = time.perf_counter()
                timer.seconds += now - (timer._mark if timer._mark is not None else now)
                timer._mark = now

            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                timer.evaluation_seconds += (metrics or {}).get("eval_runtime", 0.0)

        return _Callback()


def tensorboard_callback(log_dir: Path) -> Any:
    """Given its own writer, the callback logs into the run directory (not the checkpoint dir, which is deleted)."""
    from torch.utils.tensorboard import SummaryWriter  # only with --report-to tensorboard (an optional extra)
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


# --------------------------------------------------------------------------------------------- report


def report(
    fitted: Fitted,
    final: dict[str, Any],
    setup: ModelSetup,
    data: LabeledData,
    train_tok: Any,
    precision: str,
    before: list[Prediction],
    after: list[Prediction],
) -> RunMetrics:
    """metrics.json's record of the run: the kept epoch's scores, the history, statistics, examples."""
    state = fitted.trainer.state
    return RunMetrics.model_validate(
        {
            "final": final,
            "history": epoch_history(state.log_history),
            "train": _train_stats(fitted, setup, data, train_tok, precision),
            "examples": {"before": [_example(p) for p in before], "after": [_example(p) for p in after]},
            "log_history": state.log_history,
        }
    )


def _example(prediction: Prediction) -> dict[str, Any]:
    rounded = {name: round(value, 6) for name, value in (prediction.probabilities or {}).items()}
    return {"text": prediction.text, "label": prediction.answer, "probabilities": rounded}


def _train_stats(fitted: Fitted, setup: ModelSetup, data: LabeledData, train_tok: Any, precision: str) -> dict:
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


def best_epoch_metrics(fitted: Fitted, eval_tok: Any) -> tuple[dict[str, Any], LabelSpace]:
    """The final report: the metrics of the best checkpoint, which the Trainer has loaded at the end, and the
    label space as it will predict (multi-label: with the thresholds chosen on that evaluation). Its scores are
    reused; those of an evaluation made before an interruption were not kept, so then it is evaluated again."""
    trainer, recorder = fitted.trainer, fitted.recorder
    eval_entries = [e for e in trainer.state.log_history if "eval_loss" in e]
    best_step = trainer.state.best_global_step or eval_entries[-1]["step"]
    best_eval = next(e for e in eval_entries if e["step"] == best_step)
    scores, labels = recorder.by_step.get(best_step), recorder.labels
    if scores is None:
        output = trainer.predict(eval_tok)
        scores, labels = recorder.space.scores(_logits(output.predictions)), np.asarray(output.label_ids)
    space = recorder.decided(labels, scores)
    final = evaluation_metrics(space, labels, scores, detailed=True)
    final.update(loss=best_eval["eval_loss"], epoch=best_eval["epoch"], samples=len(eval_tok))
    return final, space
