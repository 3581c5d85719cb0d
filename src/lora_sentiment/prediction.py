"""Predict stage: a finished run (base model + LoRA adapter) that classifies and evaluates texts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import TextEncoder, drop_empty_texts, encode_labels, load_splits, select_text_label, stratified_sample
from .device import TORCH_DTYPES, configure_attention_backends, default_device, pad_multiple, resolve_precision
from .errors import UserError
from .metrics import classification_metrics
from .model import load_run_model
from .outputs import Prediction, predictions
from .run import Run

__all__ = ["Classifier", "Prediction", "load_classifier", "predict_probabilities"]


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
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    try:
        with torch.inference_mode(), autocast:
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

    def __init__(
        self, model: torch.nn.Module, encoder: TextEncoder, label_names: Sequence[str], precision: str = "fp32"
    ):
        self.model = model
        self.encoder = encoder
        self.label_names = list(label_names)
        self.precision = precision

    @classmethod
    def from_run(
        cls, run_dir: str | Path | Run, *, precision: str = "auto", device: str | None = None, merge: bool = True
    ) -> Classifier:
        run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
        model, tokenizer = load_run_model(run, merge=merge)
        target = torch.device(device) if device else default_device()
        precision = resolve_precision(precision, target)
        # Inference holds no optimizer state: casting the weights beats autocast's per-call casts.
        model.to(device=target, dtype=TORCH_DTYPES[precision]).eval()
        configure_attention_backends(target)
        return cls(model, TextEncoder.for_config(tokenizer, run.config), run.label_names, precision)

    @property
    def default_batch_size(self) -> int:
        # 32 fills a CPU's matmul units; a GPU needs more rows in flight to hide its launch overheads.
        return 128 if next(self.model.parameters()).is_cuda else 32

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        size = batch_size or self.default_batch_size
        return predict_probabilities(self.model, self.encoder, texts, batch_size=size, precision=self.precision)

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        return predictions(texts, self.predict_proba(texts, batch_size), self.label_names)

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


def load_classifier(run_dir: str | Path, **kwargs: Any) -> Classifier:
    """The public entry point: a saved run, ready to predict and evaluate."""
    return Classifier.from_run(run_dir, **kwargs)
