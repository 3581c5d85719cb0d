"""Predict stage: load a saved run (base model + LoRA adapter) and classify or evaluate texts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .config import LABELS_FILE, RUN_CONFIG_FILE, TrainConfig
from .data import TextEncoder
from .errors import UserError, first_line
from .metrics import classification_metrics
from .model import pad_multiple


@dataclass
class Prediction:
    text: str
    label: int
    label_name: str
    probability: float
    probabilities: dict[str, float] = field(default_factory=dict)


def predict_probabilities(
    model: torch.nn.Module,
    encoder: TextEncoder,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    precision: str = "fp32",
) -> np.ndarray:
    """Class probabilities for `texts`, in their order. Batches are formed from length-sorted texts so
    little compute goes to padding."""
    if len(texts) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    encoded = encoder(list(texts))
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    device = next(model.parameters()).device
    # A model cast to bf16/fp16 throughout runs as it is; one with fp32 weights left (mid-training, where
    # LoRA and the head stay fp32) runs under autocast.
    has_fp32 = any(p.dtype == torch.float32 for p in model.parameters())
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if has_fp32 else None
    was_training = model.training
    model.eval()
    out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            for start in range(0, len(texts), batch_size):
                index = order[start : start + batch_size]
                features = [{key: encoded[key][i] for key in encoded} for i in index]
                batch = encoder.tokenizer.pad(features, pad_to_multiple_of=pad_multiple(device), return_tensors="pt")
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                out[index] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    finally:
        model.train(was_training)
    return out


class Classifier:
    """A trained run ready to predict: `Classifier.from_run("runs/x").predict(["Great film!"])`."""

    def __init__(self, model: torch.nn.Module, encoder: TextEncoder, label_names: Sequence[str], precision: str = "fp32"):
        self.model = model
        self.encoder = encoder
        self.label_names = list(label_names)
        self.precision = precision

    @classmethod
    def from_run(cls, run_dir: str | Path, *, precision: str = "auto", device: str | None = None, merge: bool = True) -> "Classifier":
        from .model import TORCH_DTYPES, configure_attention_backends, default_device, resolve_precision

        model, tokenizer, config, label_names = load_run_model(Path(run_dir), merge=merge)
        target = torch.device(device) if device else default_device()
        precision = resolve_precision(precision, target)
        # Inference holds no optimizer state: casting the weights beats autocast's per-call casts.
        model.to(device=target, dtype=TORCH_DTYPES[precision]).eval()
        configure_attention_backends(target)
        encoder = TextEncoder(tokenizer, config.max_length, config.truncation, config.head_token_count, config.strip_html)
        return cls(model, encoder, label_names, precision)

    @property
    def default_batch_size(self) -> int:
        # 32 fills a CPU's matmul units; a GPU needs more rows in flight to hide its launch overheads.
        return 128 if next(self.model.parameters()).is_cuda else 32

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        size = batch_size or self.default_batch_size
        return predict_probabilities(self.model, self.encoder, texts, batch_size=size, precision=self.precision)

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        probabilities = self.predict_proba(texts, batch_size)
        return [
            Prediction(
                text=text,
                label=int(row.argmax()),
                label_name=self.label_names[int(row.argmax())],
                probability=float(row.max()),
                probabilities={name: float(p) for name, p in zip(self.label_names, row)},
            )
            for text, row in zip(texts, probabilities)
        ]

    def evaluate(
        self,
        data: str,
        *,
        split: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        max_samples: int | None = None,
        batch_size: int | None = None,
        seed: int = 42,
    ) -> dict[str, Any]:
        """Metrics on any labelled file, folder or hub split; its labels may be ids or the run's label names."""
        from .data import drop_empty_texts, encode_labels, load_splits, select_text_label, stratified_sample

        splits = load_splits(data)
        if split is None:
            split = next((s for s in ("test", "validation", "train") if s in splits), next(iter(splits)))
        if split not in splits:
            raise UserError(f"split {split!r} not in {data}; splits are: {', '.join(splits)} (set --split)")
        ds = select_text_label(splits[split], text_column, label_column, data)
        ds, dropped = drop_empty_texts(ds, data)
        ds, _ = encode_labels(ds, data, names=self.label_names)
        ds = stratified_sample(ds, max_samples, seed)
        probabilities = self.predict_proba(ds["text"], batch_size)
        metrics = classification_metrics(np.asarray(ds["label"]), probabilities)
        metrics.update(samples=len(ds), dropped_empty=dropped)
        return metrics


def load_run_model(run_dir: Path, *, merge: bool = True) -> tuple[Any, Any, TrainConfig, list[str]]:
    """A saved run's base model with its adapter (the base model's own dropout, in fp32 on the CPU), its
    tokenizer, config and label names. `merge` folds LoRA into the base weights, which removes its extra
    matmuls from every forward pass and leaves a plain transformers model."""
    from peft import PeftModel

    from .model import load_classifier_model, load_tokenizer

    config, label_names = read_run(run_dir)
    tokenizer = load_tokenizer(str(run_dir))
    base = load_classifier_model(config.model, label_names, tokenizer=tokenizer, trust_remote_code=config.trust_remote_code)
    try:
        model = PeftModel.from_pretrained(base, str(run_dir))
    except Exception as exc:  # peft raises ValueError, OSError, safetensors errors, KeyError...
        raise UserError(f"could not load the LoRA adapter in {run_dir}: {first_line(exc)} (is it a finished run directory?)") from exc
    return (model.merge_and_unload() if merge else model), tokenizer, config, label_names


def read_run(run_dir: Path) -> tuple[TrainConfig, list[str]]:
    config_path, labels_path = run_dir / RUN_CONFIG_FILE, run_dir / LABELS_FILE
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir} (pass the --output-dir of a finished training run)")
    # Only safetensors weights are loaded: a pickled adapter_model.bin could run code when read.
    for path in (config_path, labels_path, run_dir / "adapter_config.json", run_dir / "adapter_model.safetensors"):
        if not path.is_file():
            raise UserError(f"{run_dir} is not a finished run directory: {path.name} is missing (train again or pick another run)")
    from .config import build_config

    try:
        config = build_config(config_file=config_path)
        label_names = list(json.loads(labels_path.read_text(encoding="utf-8"))["label_names"])
    except (UserError, ValueError, KeyError) as exc:
        raise UserError(f"{run_dir} holds a damaged run: {first_line(exc)}") from exc
    return config, label_names


def load_classifier(run_dir: str | Path, **kwargs: Any) -> Classifier:
    """The public entry point: a saved run, ready to predict and evaluate."""
    return Classifier.from_run(run_dir, **kwargs)
