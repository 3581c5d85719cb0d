"""Train stage: the recipe end to end — data, tokenizer, model + LoRA, HF Trainer, metrics, artifacts."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import distributed
from .atomic import fresh_staging_dir, replace_dir
from .config import LABELS_FILE, METRICS_FILE, RUN_CONFIG_FILE, TrainConfig
from .errors import UserError

Log = Callable[[str], None]
TENSORBOARD_DIR = "tensorboard"
RESUME_CONFIG_FILE = "run_config.yaml"  # in the checkpoints folder: the settings --resume must match


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, Any]
    label_names: list[str]
    before: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)


class _EvalRecorder:
    """compute_metrics that also keeps each evaluation's probabilities by training step, so the final report
    (confusion matrix, ROC-AUC) comes from the best epoch without another pass over the eval set."""

    def __init__(self) -> None:
        self.by_step: dict[int, np.ndarray] = {}
        self.labels: np.ndarray | None = None
        self.trainer: Any = None  # set once the Trainer exists: it knows the step being evaluated

    def __call__(self, eval_prediction: Any) -> dict[str, float]:
        from .metrics import classification_metrics, softmax

        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        probabilities = softmax(np.asarray(logits, dtype=np.float64))
        self.by_step[self.trainer.state.global_step] = probabilities
        self.labels = np.asarray(eval_prediction.label_ids)
        return classification_metrics(self.labels, probabilities, with_confusion=False)


class StepTimer:
    """Wall time of the training steps alone (data loading included, evaluation and checkpointing not),
    so throughput figures are not diluted by the per-epoch evaluation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._mark: float | None = None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        from .model import synchronize

        timer = self

        class _Callback(TrainerCallback):
            def on_epoch_begin(self, args, state, control, **kwargs):
                timer._mark = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                synchronize()
                now = time.perf_counter()
                timer.seconds += now - (timer._mark if timer._mark is not None else now)
                timer._mark = now

        return _Callback()


@dataclass
class RunPaths:
    """The output dir and its hidden sibling holding the checkpoints of a run in progress (the finished run
    is assembled in another, `atomic.fresh_staging_dir`)."""

    final: Path

    @property
    def checkpoints(self) -> Path:
        return self.final.with_name(f".{self.final.name}.checkpoints")



def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete Trainer checkpoint: trainer_state.json is the last file a checkpoint gets."""
    if not checkpoints.is_dir():
        return None
    complete = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file() and p.name.split("-")[-1].isdigit()]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def checkpoint_epoch(checkpoint: Path) -> float:
    return float(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8")).get("epoch") or 0)


def check_resume(paths: RunPaths, config: TrainConfig) -> tuple[Path | None, TrainConfig]:
    """The checkpoint to resume from (None: start fresh), refusing to mix an interrupted run with new settings
    and refusing to discard one silently."""
    from .config import build_config

    checkpoint = latest_checkpoint(paths.checkpoints)
    out = paths.final
    if not config.resume:
        if checkpoint is not None and not config.overwrite:
            raise UserError(
                f"--output-dir {out} has an interrupted run (last checkpoint at epoch {checkpoint_epoch(checkpoint):g}); "
                "pass --resume to continue it, or --overwrite to discard it and start over"
            )
        return None, config
    saved_file = paths.checkpoints / RESUME_CONFIG_FILE
    if checkpoint is None or not saved_file.is_file():
        raise UserError(f"nothing to resume for --output-dir {out}: no checkpoint of an interrupted run (drop --resume to train anew)")
    saved = build_config(config_file=saved_file)
    ignored = {"overwrite", "resume"}
    now, before = config.model_dump(exclude=ignored), saved.model_dump(exclude=ignored)
    changed = [f"--{k.replace('_', '-')} (was {before[k]!r}, now {now[k]!r})" for k in now if now[k] != before[k]]
    if changed:
        raise UserError(
            "--resume continues the interrupted run with its own settings, but these differ: "
            + "; ".join(changed)
            + " (give the same flags, or --overwrite without --resume to start over)"
        )
    # The interrupted run was allowed to replace the output dir; resuming it is, too.
    return checkpoint, config.model_copy(update={"overwrite": config.overwrite or saved.overwrite})


def check_output_dir(config: TrainConfig) -> Path:
    """Refuse a non-empty output dir before any work is done (unless --overwrite)."""
    out = Path(config.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--output-dir {out} is a file; choose a directory path")
    if out.is_dir() and any(out.iterdir()) and not config.overwrite:
        raise UserError(f"--output-dir {out} is not empty; pass --overwrite to replace it or choose another --output-dir")
    return out


def format_predictions(title: str, texts: Sequence[str], probabilities: np.ndarray, label_names: Sequence[str]) -> str:
    lines = [title]
    width = max(len(n) for n in label_names)
    for text, row in zip(texts, probabilities):
        best = int(row.argmax())
        lines.append(f"  {label_names[best]:<{width}}  {row[best]:.3f}  {text}")
    return "\n".join(lines)


def _prediction_rows(texts: Sequence[str], probabilities: np.ndarray, label_names: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"text": t, "label": label_names[int(p.argmax())], "probabilities": {n: round(float(v), 6) for n, v in zip(label_names, p)}}
        for t, p in zip(texts, probabilities)
    ]


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluation: the epoch's mean logged training loss beside its eval metrics."""
    rows, losses = [], []
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            losses.append(entry["loss"])
        elif "eval_loss" in entry:
            row = {"epoch": round(entry["epoch"], 4), "step": entry["step"]}
            row["train_loss"] = float(np.mean(losses)) if losses else None
            row.update({k.removeprefix("eval_"): v for k, v in entry.items() if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))})
            rows.append(row)
            losses = []
    return rows


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
) -> Any:
    """The one place a Trainer is configured for this project."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments

    from .model import default_device, pad_multiple

    steps_per_epoch = max(1, -(-len(train_ds) // (config.batch_size * config.gradient_accumulation_steps)))
    args = TrainingArguments(
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
        save_total_limit=2,
        seed=config.seed,
        use_cpu=default_device().type == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # LoRA and the head are used in every forward pass
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    callbacks = list(callbacks)
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(default_device())),
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )
    # The Trainer takes any forward(**kwargs) to compute a loss already normalised by the tokens of the whole
    # step, and so multiplies the loss by the process count and skips dividing by the accumulation steps.
    # Sequence-classification heads return a plain per-batch mean: without this, 2 processes would report
    # (and clip) twice the loss, and gradient accumulation would sum gradients instead of averaging them.
    trainer.model_accepts_loss_kwargs = False
    return trainer


def train(config: TrainConfig, *, log: Log = print) -> TrainResult:
    """Fine-tune `config.model` with LoRA on `config.data`; write the run to `config.output_dir`."""
    from transformers import set_seed

    from .data import TextEncoder, load_labeled_data, tokenize_dataset
    from .hub import is_local
    from .model import (
        TORCH_DTYPES,
        add_lora,
        cast_frozen_weights,
        configure_attention_backends,
        count_parameters,
        default_device,
        head_modules,
        ensure_pad_token,
        load_classifier_model,
        load_tokenizer,
        model_max_length,
        resolve_lora_targets,
        resolve_precision,
    )
    from .prediction import predict_probabilities

    if is_local(config.model):
        # A run must still find its base model when loaded from another working directory.
        config = config.model_copy(update={"model": str(Path(config.model).expanduser().resolve())})
    distributed.init(cpu=default_device().type == "cpu")
    main_process = distributed.is_main_process()
    if not main_process:
        log = _silent  # one run, one voice: rank 0 prints and writes
    paths = RunPaths(Path(config.output_dir).expanduser())
    resume_from, config = check_resume(paths, config)
    requested = config  # as asked, before the model fills in its defaults: what --resume must match
    final_dir = check_output_dir(config)
    if config.report_to == "tensorboard":
        check_tensorboard()
    precision = resolve_precision(config.precision, default_device())

    # Everything that can fail on bad input happens before anything is written.
    with distributed.main_process_first():
        data = load_labeled_data(config, log=log)
    log(f"Data: {len(data.train)} training and {len(data.eval)} evaluation texts; labels: {', '.join(data.label_names)}")
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    added_pad_token = ensure_pad_token(tokenizer)
    if added_pad_token:
        log("The tokenizer had no pad token: added [PAD] and resized the model's embeddings.")
    set_seed(config.seed)  # the fresh classification head is initialised from this seed
    model = load_classifier_model(
        config.model,
        data.label_names,
        tokenizer=tokenizer,
        trust_remote_code=config.trust_remote_code,
        base_dropout=config.base_dropout,
        attention=config.attention,
        max_length=config.max_length,
    )
    limit = model_max_length(model.config, tokenizer)
    if limit is not None and config.max_length > limit:
        log(f"--max-length {config.max_length} is above this model's maximum; using {limit}.")
        config = config.model_copy(update={"max_length": limit})
    targets = resolve_lora_targets(model, config.lora_targets)
    config = config.model_copy(update={"lora_targets": targets})
    model = add_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout, targets=targets)
    parameters = count_parameters(model)
    log(f"LoRA on {', '.join(targets)}; head trained in full: {', '.join(head_modules(model))}")
    log(str(parameters))

    encoder = TextEncoder(tokenizer, config.max_length, config.truncation, config.head_token_count, config.strip_html)
    with distributed.main_process_first():
        train_tok = tokenize_dataset(data.train, encoder)
        # Evaluation order does not change its metrics; sorted by length, its batches carry little padding.
        eval_tok = tokenize_dataset(data.eval, encoder).sort("length", reverse=True)

    model.to(default_device())
    configure_attention_backends(default_device())
    if precision in ("bf16", "fp16"):
        cast_frozen_weights(model, TORCH_DTYPES[precision])
    before = predict_probabilities(model, encoder, config.examples, precision=precision)
    log(format_predictions("Untrained model predictions:", config.examples, before, data.label_names))

    if resume_from is None and main_process:
        # A fresh run: checkpoints of an older interrupted run (allowed by --overwrite) go now.
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        paths.checkpoints.mkdir(parents=True)
        (paths.checkpoints / RESUME_CONFIG_FILE).write_text(requested.to_yaml(), encoding="utf-8")
    distributed.barrier()
    recorder = _EvalRecorder()
    timer = StepTimer()
    callbacks = [timer.callback()]
    if config.report_to == "tensorboard" and main_process:
        callbacks.append(tensorboard_callback(paths.checkpoints / TENSORBOARD_DIR))
    trainer = build_trainer(model, tokenizer, train_tok, eval_tok, config, paths.checkpoints, precision, recorder, callbacks)
    recorder.trainer = trainer
    if resume_from is not None:
        log(f"Resuming from {resume_from.name} (epoch {checkpoint_epoch(resume_from):g} of {config.epochs:g}).")
    ranks = distributed.world_size()
    devices = f"{ranks} processes on {default_device().type} (batch size {config.batch_size} per process)" if ranks > 1 else default_device().type
    log(f"Training on {devices} in {precision} for {config.epochs:g} epochs.")
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    epochs_done = trainer.state.epoch or 0.0
    lengths = list(train_tok["length"])
    real_tokens = int(sum(lengths))

    final = best_epoch_metrics(trainer, recorder, eval_tok)

    after = predict_probabilities(model, encoder, config.examples, precision=precision)
    log(format_predictions("Trained model predictions:", config.examples, after, data.label_names))

    metrics = {
        "final": final,
        "history": epoch_history(trainer.state.log_history),
        "train": {
            "runtime_s": train_output.metrics.get("train_runtime"),
            "step_seconds": timer.seconds,
            "samples_per_second": epochs_done * len(train_tok) / timer.seconds if timer.seconds else None,
            "real_tokens_per_second": epochs_done * real_tokens / timer.seconds if timer.seconds else None,
            "real_tokens_per_epoch": real_tokens,
            "squared_lengths_per_epoch": int(sum(n * n for n in lengths)),  # attention cost grows with s²
            "epochs": epochs_done,
            "max_length": config.max_length,
            "train_samples": len(data.train),
            "dropped_empty": data.dropped_empty,
            "precision": precision,
            "added_pad_token": added_pad_token,
            "trainable_parameters": parameters.trainable,
            "total_parameters": parameters.total,
        },
        "examples": {"before": _prediction_rows(config.examples, before, data.label_names), "after": _prediction_rows(config.examples, after, data.label_names)},
        "log_history": trainer.state.log_history,
    }
    if not main_process:
        distributed.barrier()  # rank 0 saves; the run is complete for every rank when it is done
        return TrainResult(final_dir, metrics, data.label_names, metrics["examples"]["before"], metrics["examples"]["after"])

    publish_run(paths, model, tokenizer, config, data.label_names, metrics, parameters)
    distributed.barrier()
    log(f"Accuracy {final['accuracy']:.4f}, F1 {final['f1']:.4f} on {len(data.eval)} evaluation texts. Saved to {final_dir}")
    return TrainResult(final_dir, metrics, data.label_names, metrics["examples"]["before"], metrics["examples"]["after"])


def best_epoch_metrics(trainer: Any, recorder: _EvalRecorder, eval_tok: Any) -> dict[str, Any]:
    """The final report: the metrics of the best checkpoint, which the Trainer has loaded at the end. Its
    evaluation's probabilities are reused; one made before an interruption was not kept in memory, so then
    the loaded best model is evaluated again."""
    from .metrics import classification_metrics, softmax

    eval_entries = [e for e in trainer.state.log_history if "eval_loss" in e]
    best_step = trainer.state.best_global_step or eval_entries[-1]["step"]
    best_eval = next(e for e in eval_entries if e["step"] == best_step)
    probabilities, labels = recorder.by_step.get(best_step), recorder.labels
    if probabilities is None:
        output = trainer.predict(eval_tok)
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        probabilities, labels = softmax(np.asarray(logits, dtype=np.float64)), np.asarray(output.label_ids)
    final = classification_metrics(labels, probabilities)
    final.update(loss=best_eval["eval_loss"], epoch=best_eval["epoch"], samples=len(eval_tok))
    return final


def publish_run(paths: RunPaths, model: Any, tokenizer: Any, config: TrainConfig, label_names: list[str], metrics: dict, parameters: Any) -> None:
    """Save into a fresh hidden folder and swap it into place. The checkpoints go only once the run is in
    place, so a crash while saving can still be resumed."""
    staging = fresh_staging_dir(paths.final)
    save_run(staging, model, tokenizer, config.model_copy(update={"resume": False}), label_names, metrics, parameters)
    if (paths.checkpoints / TENSORBOARD_DIR).is_dir():
        shutil.copytree(paths.checkpoints / TENSORBOARD_DIR, staging / TENSORBOARD_DIR)
    replace_dir(staging, paths.final)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)


def _silent(message: str) -> None:
    pass


def check_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--report-to tensorboard needs the tensorboard package: pip install 'lora-sentiment[tensorboard]'") from None


def tensorboard_callback(log_dir: Path) -> Any:
    """Given its own writer, the callback logs into the run directory (not the checkpoint dir, which is deleted)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def save_run(run_dir: Path, model: Any, tokenizer: Any, config: TrainConfig, label_names: list[str], metrics: dict, parameters: Any) -> None:
    from .card import model_card
    from .plots import draw_run_plots

    # The embedding matrix is saved only when the user targets it: a resized pad row is re-created identically.
    model.save_pretrained(str(run_dir), save_embedding_layers=False)
    tokenizer.save_pretrained(str(run_dir))
    (run_dir / RUN_CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    (run_dir / LABELS_FILE).write_text(json.dumps({"label_names": label_names, "id2label": dict(enumerate(label_names))}, indent=2), encoding="utf-8")
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")
    (run_dir / "README.md").write_text(model_card(config, label_names, metrics, parameters), encoding="utf-8")
    draw_run_plots(run_dir, metrics, label_names)
