"""The HF Trainer as this project configures it: training arguments, a numpy padding collator, evaluation with
SDPA where training runs eager attention, per-epoch metrics kept for the final report, the weighted loss of
--class-weights, and a timer of the training steps alone."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from ..config import TrainConfig
from ..data.encoding import padded_batch
from ..data.quiet import bars_shown
from ..modeling.device import default_device, eval_batch_size, pad_multiple, synchronize
from ..problems.metrics import LOWER_IS_BETTER, evaluation_metrics
from ..problems.space import LabelSpace
from .schedule import Schedule


class _Trainer(Trainer):
    """The Trainer, evaluating with SDPA attention where `--attention auto` picked eager attention for training.

    Eager attention is chosen only for its faster backward pass (small heads, short inputs on a CPU, see
    device.resolve_attention); evaluation has no backward pass, and SDPA runs it faster, as prediction does."""

    eval_attention: str | None = None
    split_by_length: bool = False  # --group-by-length on a CPU, one process: see length_parts

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:  # fmt: skip
        parts = None
        # Not with --class-weights' loss: its weighted mean is normalised by each part's own weights, so the parts
        # would not add up to the batch's loss.
        if self.split_by_length and model.training and not return_outputs and self.compute_loss_func is None:
            parts = length_parts(inputs, left_padded=getattr(self.processing_class, "padding_side", "") == "left")
        if parts is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # Each part's loss is a mean over its rows (model_accepts_loss_kwargs is off, below), so the shares add
        # them up to the batch's mean; one backward pass follows, as for the whole batch.
        losses = [super(_Trainer, self).compute_loss(model, part, False, num_items_in_batch) * share
                  for part, share in parts]  # fmt: skip
        return torch.stack(losses).sum()

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        # In the split's order, not in the length-grouped shuffle the Trainer takes from --group-by-length: the
        # split comes sorted by length already (little padding), and its scores must stay paired with its rows
        # (the run is compared with the baseline text by text).
        if eval_dataset is None or self.args.world_size > 1:
            return None
        return torch.utils.data.SequentialSampler(eval_dataset)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        with self._evaluating():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        # The kept epoch's scores are predicted again after a resume (its evaluation ran before the
        # interruption): with the evaluation's attention, or they differ from the uninterrupted run's in the 4th
        # decimal under bf16 (eager and SDPA round differently).
        with self._evaluating():
            return super().predict(*args, **kwargs)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        training_attention = base.config._attn_implementation
        switched = False
        if self.eval_attention is not None and self.eval_attention != training_attention:
            try:
                base.set_attn_implementation(self.eval_attention)
                switched = True
            except (ValueError, ImportError):  # an architecture without it evaluates as it trains
                pass
        try:
            yield
        finally:
            if switched:
                base.set_attn_implementation(training_attention)


# A batch of mixed lengths is padded to its longest text. Where the whole training set is one batch (a small
# set: 15 reviews at batch 16, 100 steps over them) nothing groups lengths across batches, and about 40 % of an
# IMDB batch's tokens were padding. Run as length-sorted parts of at least MIN_PART_ROWS rows, one such step took 0.71
# s instead of 1.09 at 256 tokens and 1.78 instead of 2.33 at 512 (MiniLM, LoRA, bf16, avx512-bf16 CPU); parts of
# 2 rows were slower again at 256. A split that saves less than a fifth of the padded tokens is not made: the
# length-grouped batches of a larger set stay whole.
MIN_PART_ROWS = 4
SPLIT_IF_AT_MOST = 0.8  # of the padded batch's tokens


def length_parts(inputs: dict[str, Any], left_padded: bool = False) -> list[tuple[dict[str, Any], float]] | None:
    """The batch as parts of similar length (at least MIN_PART_ROWS rows each, sorted by length), each cut to its
    own longest text, with each part's share of the rows; None where the batch is better run whole."""
    mask = inputs.get("attention_mask")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        return None
    rows, width = mask.shape
    if rows < 2 * MIN_PART_ROWS:
        return None
    lengths = mask.sum(dim=1)
    groups = torch.tensor_split(torch.argsort(lengths, stable=True), rows // MIN_PART_ROWS)
    widths = [int(lengths[g].max()) for g in groups]
    if sum(len(g) * w for g, w in zip(groups, widths)) > SPLIT_IF_AT_MOST * rows * width:
        return None
    parts = []
    for group, cut in zip(groups, widths):
        part = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows:
                value = value[group]
                if key in FastPadding.PADDED_KEYS and value.dim() == 2:
                    value = value[:, width - cut :] if left_padded else value[:, :cut]
            part[key] = value
        parts.append((part, len(group) / rows))
    return parts


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


@dataclass
class Hooks:
    """What the recipe hooks into the Trainer: the per-epoch metrics, callbacks, and the loss of --class-weights."""

    compute_metrics: Any = None
    callbacks: Sequence[Any] = ()
    loss: Callable[..., Any] | None = None
    step_lines: bool = True  # the Trainer's loss and evaluation dicts on stdout (off: the bars only)


class _BarsOnly(ProgressCallback):
    """The Trainer's progress bars (stderr) without its loss and evaluation dicts (tqdm.write, stdout): a fold of
    `audit` or a trial of `tune` reports itself in a few lines, and the dicts of five folds on 60 texts were 486
    lines of an audit's output."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        return None


@dataclass
class Fitted:
    trainer: Any
    recorder: EvalRecorder
    timer: StepTimer
    runtime_s: float | None
    keep: str = "best"  # the schedule's: the best evaluation's state, or the last


def build_trainer(
    setup: Any, splits: tuple[Any, Any], work_dir: Path, precision: str, hooks: Hooks, schedule: Schedule
) -> Any:
    """The one place a Trainer is configured for this project, over `splits` (train, eval) of tokenized rows and
    a ModelSetup. `hooks.loss` replaces the model's own loss (the weighted one of --class-weights); training stays
    the Trainer's own loop either way. `schedule`: epochs, evaluations and what is kept (`schedule.plan`, with the
    problem type's fewest steps: the recipe plans it)."""
    model, tokenizer, config = setup.model, setup.tokenizer, setup.config
    train_ds, eval_ds = splits
    compute_metrics, callbacks, loss = hooks.compute_metrics, hooks.callbacks, hooks.loss
    callbacks = list(callbacks)
    if schedule.patience:
        callbacks.append(EarlyStoppingCallback(schedule.patience))
    trainer = _Trainer(
        model=model,
        args=training_arguments(config, schedule, work_dir, precision),
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
    if not hooks.step_lines:
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)  # no bars (a piped log): nothing, as the dicts are what goes
        if bars_shown():
            trainer.add_callback(_BarsOnly)
    trainer.eval_attention = "sdpa" if config.attention == "auto" else None
    # Measured on CPUs only; several processes would each run forward passes the DDP reducer does not expect.
    trainer.split_by_length = config.group_by_length and default_device().type == "cpu" and trainer.args.world_size == 1
    return trainer


def training_arguments(config: TrainConfig, schedule: Schedule, work_dir: Path, precision: str) -> TrainingArguments:
    on_gpu = default_device().type == "cuda"
    # Every few epochs (many short epochs of a small set): by steps, a whole number of epochs apart.
    by_steps = schedule.eval_every > 1
    every = schedule.eval_every * schedule.steps_per_epoch
    return TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=eval_batch_size(config.eval_batch_size, default_device()),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=schedule.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of all steps
        eval_strategy="steps" if by_steps else "epoch",
        save_strategy="steps" if by_steps else "epoch",
        eval_steps=every if by_steps else None,
        save_steps=every if by_steps else None,
        logging_strategy="steps",
        # Five loss lines an epoch, and about twenty in all where many short epochs of a small set would log
        # every step (36 epochs of 3 steps: 108 lines).
        logging_steps=max(1, schedule.steps_per_epoch // 5, schedule.steps // 20),
        load_best_model_at_end=schedule.keep == "best",
        metric_for_best_model=config.metric_for_best_model,
        greater_is_better=config.metric_for_best_model not in LOWER_IS_BETTER,
        average_tokens_across_devices=False,
        save_total_limit=2,
        seed=config.seed,
        use_cpu=default_device().type == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to="none",
        disable_tqdm=not bars_shown(),  # then the Trainer prints its loss and evaluation dicts without bars
        # On a GPU, batches are prepared by two worker processes while a step runs, so the device does not wait
        # for them; on a CPU the same cores would be taken from the step itself.
        dataloader_num_workers=2 if on_gpu else 0,
        dataloader_persistent_workers=on_gpu,
        ddp_find_unused_parameters=False,  # LoRA and the head are used in every forward pass
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )


class EvalRecorder:
    """compute_metrics that also keeps each evaluation's scores by training step, so the final report (per-label
    table, confusion matrix, ROC-AUC, tuned thresholds) comes from the kept epoch without another pass."""

    def __init__(self, space: LabelSpace, threshold: float | None) -> None:
        self.space = space
        self.threshold = threshold
        self.by_step: dict[int, np.ndarray] = {}
        self.labels: np.ndarray | None = None
        self.trainer: Any = None  # set once the Trainer exists: it knows the step being evaluated

    def __call__(self, eval_prediction: Any) -> dict[str, float]:
        scores = self.space.scores(logits_of(eval_prediction.predictions))
        self.by_step[self.trainer.state.global_step] = scores
        self.labels = np.asarray(eval_prediction.label_ids)
        return evaluation_metrics(self.decided(self.labels, scores), self.labels, scores, detailed=False)

    def decided(self, labels: np.ndarray, scores: np.ndarray) -> LabelSpace:
        """The label space as it will predict: multi-label's thresholds fitted on these evaluation rows."""
        return self.space.problem.decided(self.space, labels, scores, self.threshold)


def logits_of(predictions: Any) -> np.ndarray:
    return np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions, dtype=np.float64)


def weighted_loss(space: LabelSpace, weights: np.ndarray | None) -> Callable[..., torch.Tensor] | None:
    """--class-weights as the Trainer's compute_loss_func, the problem type's weighted loss (cross-entropy, or BCE
    with a positive weight per tag). None (the model's own loss) when unweighted."""
    if weights is None:
        return None
    weight = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"].float()
        return space.problem.weighted_loss(logits, labels, weight.to(logits.device))

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
