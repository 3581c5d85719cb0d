"""Predict stage: a finished run (base model + LoRA adapter) that classifies, tags or scores texts, and
evaluates itself on labelled data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .data import TextEncoder, mean_by_text, padded_batch
from .device import (
    TORCH_DTYPES,
    configure_attention_backends,
    default_device,
    gpu_inference_batch,
    pad_multiple,
    resolve_precision,
)
from .model import load_run_model
from .outputs import Prediction, predictions
from .problem import LabelSpace
from .run import Run

__all__ = ["Classifier", "Prediction", "forward_logits", "load_classifier", "predict_logits"]

LongText = Literal["truncate", "chunks"]


# On a GPU the texts are tokenized a block at a time, the next block in a thread while one runs: tokenization
# is CPU work the device would otherwise wait for. (More threads tokenizing at once were slower: the Rust
# tokenizer already spreads a batch over the cores; BENCHMARKS.md, GPU.)
GPU_TOKENIZE_BLOCK = 4096


def predict_logits(
    model: torch.nn.Module,
    encoder: TextEncoder,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    precision: str = "fp32",
    long_text: LongText = "truncate",
    stride: int | None = None,
    tokenize_block: int | None = None,
) -> np.ndarray:
    """Logits for `texts`, in their order. `truncate` reads each text as the run's truncation cuts it;
    `chunks` reads every token, in overlapping windows whose logits are averaged per text. Texts are
    tokenized `tokenize_block` at a time, the next block while one runs [GPU: GPU_TOKENIZE_BLOCK; CPU: all]."""
    if len(texts) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    on_gpu = next(model.parameters()).device.type == "cuda"
    size = tokenize_block or (GPU_TOKENIZE_BLOCK if on_gpu else len(texts))
    blocks = [texts[i : i + size] for i in range(0, len(texts), size)]

    def run(block: Sequence[str], inputs: tuple[dict[str, list], list[int]]) -> np.ndarray:
        encoded, owners = inputs
        logits = forward_logits(model, encoder.tokenizer, encoded, batch_size, precision)
        return mean_by_text(logits, owners, len(block)) if long_text == "chunks" else logits

    if len(blocks) == 1:
        return run(texts, encoder.encode(texts, long_text, stride))
    results = []
    with ThreadPoolExecutor(1) as ahead:
        upcoming = ahead.submit(encoder.encode, blocks[0], long_text, stride)
        for k, block in enumerate(blocks):
            inputs = upcoming.result()
            if k + 1 < len(blocks):
                upcoming = ahead.submit(encoder.encode, blocks[k + 1], long_text, stride)
            results.append(run(block, inputs))
    return np.concatenate(results)


def forward_logits(
    model: torch.nn.Module,
    tokenizer: Any,
    encoded: dict[str, list],
    batch_size: int,
    precision: str,
    *,
    width: int | None = None,
    call: Callable[[dict[str, torch.Tensor], np.ndarray], torch.Tensor] | None = None,
) -> np.ndarray:
    """Batches formed from length-sorted inputs, so little compute goes to padding; rows back in input order.
    The logits stay on the device until the last batch: no wait for the device between batches. `call` runs
    one batch (given its rows' indices) [model(**batch).logits]; `width` is its logits' [the model's labels]."""
    width = width or model.config.num_labels
    count = len(encoded["input_ids"])
    if count == 0:
        return np.empty((0, width), dtype=np.float32)
    call = call or (lambda batch, index: model(**batch).logits)
    order = np.argsort(-np.array([len(ids) for ids in encoded["input_ids"]]), kind="stable")
    device = next(model.parameters()).device
    out = torch.empty((count, width), dtype=torch.float32, device=device)
    # A model cast to bf16/fp16 throughout runs as it is; one with fp32 weights left (mid-training, where
    # LoRA and the head stay fp32) runs under autocast.
    has_fp32 = any(p.dtype == torch.float32 for p in model.parameters())
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if has_fp32 else None
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    padding = (tokenizer.pad_token_id or 0, tokenizer.padding_side == "left", pad_multiple(device))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast:
            for start in range(0, count, batch_size):
                index = order[start : start + batch_size]
                batch = {k: _to(torch.from_numpy(v), device) for k, v in padded_batch(encoded, index, *padding).items()}
                out[torch.as_tensor(index, device=device)] = call(batch, index).float()
    finally:
        model.train(was_training)
    return out.cpu().numpy()


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)  # the copy overlaps the running batch


class Classifier:
    """A trained run ready to predict: `Classifier.from_run("runs/x").predict(["Great film!"])`."""

    def __init__(
        self,
        model: torch.nn.Module,
        encoder: TextEncoder,
        labels: LabelSpace | Sequence[str],
        precision: str = "fp32",
        *,
        long_text: LongText = "truncate",
        stride: int | None = None,
        run_config: Any = None,
    ):
        self.model = model
        self.encoder = encoder
        self.space = labels if isinstance(labels, LabelSpace) else LabelSpace("single-label", list(labels))
        self.precision = precision
        self.long_text = long_text
        self.stride = stride
        self.run_config = run_config

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path | Run,
        *,
        precision: str = "auto",
        device: str | None = None,
        merge: bool = True,
        long_text: LongText = "truncate",
        stride: int | None = None,
    ) -> Classifier:
        run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
        model, tokenizer = load_run_model(run, merge=merge)
        target = torch.device(device) if device else default_device()
        precision = resolve_precision(precision, target)
        # Inference holds no optimizer state: casting the weights beats autocast's per-call casts.
        model.to(device=target, dtype=TORCH_DTYPES[precision]).eval()
        configure_attention_backends(target)
        encoder = TextEncoder.for_config(tokenizer, run.config)
        return cls(model, encoder, run.space, precision, long_text=long_text, stride=stride, run_config=run.config)

    @property
    def default_batch_size(self) -> int:
        # 32 fills a CPU's matmul units; a GPU needs as many rows in flight as its memory allows.
        device = next(self.model.parameters()).device
        if device.type != "cuda":
            return 32
        return gpu_inference_batch(self.model.config, self.encoder.max_length, device)

    def predict_scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (single-label), tag probabilities (multi-label) or values (regression, one column)."""
        logits = predict_logits(
            self.model, self.encoder, texts, batch_size=batch_size or self.default_batch_size,
            precision=self.precision, long_text=self.long_text, stride=self.stride,
        )  # fmt: skip
        return self.space.scores(logits)

    predict_proba = predict_scores  # the scikit-learn name, as before

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        return predictions(texts, self.predict_scores(texts, batch_size), self.space)

    def evaluate(self, data: str, **options: Any) -> dict[str, Any]:
        """Metrics on any labelled file, folder or hub split (see evaluation.evaluate_on)."""
        from .evaluation import evaluate_on  # scikit-learn: only when evaluating

        return evaluate_on(self, data, **options)


def load_classifier(run_dir: str | Path, **kwargs: Any) -> Classifier:
    """The public entry point: a saved run, ready to predict and evaluate."""
    return Classifier.from_run(run_dir, **kwargs)
