"""Predict stage: a finished run (base model + LoRA adapter) that classifies, tags or scores texts, and
evaluates itself on labelled data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.encoding import TextEncoder, answerable, mean_by_text, padded_batch, text_list
from ..modeling.device import (
    CPU_BATCH,
    TORCH_DTYPES,
    configure_attention_backends,
    default_device,
    gpu_inference_batch,
    pad_multiple,
    resolve_precision,
)
from ..modeling.model import load_run_model
from ..problems.abstention import Abstention, check_abstention
from ..problems.outputs import Prediction, predictions
from ..problems.space import LabelSpace
from ..runs.run import Run
from .base import LoadOptions, LongText, PredictorBase

__all__ = ["Classifier", "Prediction", "Reading", "forward_logits", "load_classifier", "predict_logits"]


# On a GPU the texts are tokenized a block at a time, the next block in a thread while one runs: tokenization
# is CPU work the device would otherwise wait for. (More threads tokenizing at once were slower: the Rust
# tokenizer already spreads a batch over the cores; docs/benchmarks/gpu.md.)
GPU_TOKENIZE_BLOCK = 4096


@dataclass(frozen=True)
class Reading:
    """How texts are read into forward passes: `truncate` reads each text as the run's truncation cuts it,
    `chunks` every token, in overlapping windows (`stride` tokens shared) whose logits are averaged per text."""

    long_text: LongText = "truncate"
    stride: int | None = None
    batch_size: int = 32
    precision: str = "fp32"


def predict_logits(
    model: torch.nn.Module,
    encoder: TextEncoder,
    texts: Sequence[str],
    reading: Reading = Reading(),
    *,
    tokenize_block: int | None = None,
) -> np.ndarray:
    """Logits for `texts`, in their order. Texts are tokenized `tokenize_block` at a time, the next block while
    one runs [GPU: GPU_TOKENIZE_BLOCK; CPU: all]."""
    if len(texts) == 0:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    on_gpu = next(model.parameters()).device.type == "cuda"
    size = tokenize_block or (GPU_TOKENIZE_BLOCK if on_gpu else len(texts))
    blocks = [texts[i : i + size] for i in range(0, len(texts), size)]

    def run(block: Sequence[str], inputs: tuple[dict[str, list], list[int]]) -> np.ndarray:
        encoded, owners = inputs
        logits = forward_logits(model, encoder.tokenizer, encoded, reading)
        return mean_by_text(logits, owners, len(block)) if reading.long_text == "chunks" else logits

    if len(blocks) == 1:
        return run(texts, encoder.encode(texts, reading.long_text, reading.stride))
    results = []
    with ThreadPoolExecutor(1) as ahead:
        upcoming = ahead.submit(encoder.encode, blocks[0], reading.long_text, reading.stride)
        for k, block in enumerate(blocks):
            inputs = upcoming.result()
            if k + 1 < len(blocks):
                upcoming = ahead.submit(encoder.encode, blocks[k + 1], reading.long_text, reading.stride)
            results.append(run(block, inputs))
    return np.concatenate(results)


def forward_logits(
    model: torch.nn.Module,
    tokenizer: Any,
    encoded: dict[str, list],
    reading: Reading,
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
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(reading.precision) if has_fp32 else None
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    padding = (tokenizer.pad_token_id or 0, tokenizer.padding_side == "left", pad_multiple(device))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast:
            for start in range(0, count, reading.batch_size):
                index = order[start : start + reading.batch_size]
                batch = {k: _to(torch.from_numpy(v), device) for k, v in padded_batch(encoded, index, *padding).items()}
                out[torch.as_tensor(index, device=device)] = call(batch, index).float()
    finally:
        model.train(was_training)
    return out.cpu().numpy()


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)  # the copy overlaps the running batch


class Classifier(PredictorBase):
    """A trained run ready to predict: `Classifier.from_run("runs/x").predict(["Great film!"])`."""

    def __init__(
        self,
        model: torch.nn.Module,
        encoder: TextEncoder,
        labels: LabelSpace | Sequence[str],
        options: LoadOptions | None = None,
        run_config: Any = None,
    ):
        options = options or LoadOptions(precision="fp32")
        self.model = model
        self.encoder = encoder
        self.space = labels if isinstance(labels, LabelSpace) else LabelSpace("single-label", list(labels))
        self.precision = "fp32" if options.precision == "auto" else options.precision
        self.long_text = options.long_text
        self.stride = options.stride
        self.run_config = run_config
        self.abstention = Abstention.of(options)

    @classmethod
    def from_run(
        cls, run_dir: str | Path | Run, options: LoadOptions | None = None, *, merge: bool = True, **given: Any
    ) -> Classifier:
        """`given`: LoadOptions' fields (precision, device, long_text, stride), as keywords."""
        options = LoadOptions.of(options, given)
        run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
        check_abstention(run.space, Abstention.of(options), str(run.path))
        model, tokenizer = load_run_model(run, merge=merge)
        target = torch.device(options.device) if options.device else default_device()
        precision = resolve_precision(options.precision, target)
        # Inference holds no optimizer state: casting the weights beats autocast's per-call casts.
        model.to(device=target, dtype=TORCH_DTYPES[precision]).eval()
        configure_attention_backends(target)
        encoder = TextEncoder.for_config(tokenizer, run.config)
        resolved = options.model_copy(update={"precision": precision})
        classifier = cls(model, encoder, run.space, resolved, run_config=run.config)
        classifier.run_path = run.path
        return classifier

    @property
    def device(self) -> str:
        return str(next(self.model.parameters()).device)

    @property
    def default_batch_size(self) -> int:
        # CPU_BATCH on a CPU (its activations stay in cache); a GPU needs as many rows in flight as its memory allows.
        device = next(self.model.parameters()).device
        if device.type != "cuda":
            return CPU_BATCH
        return gpu_inference_batch(self.model.config, self.encoder.max_length, device)

    def predict_scores(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (single-label), tag probabilities (multi-label) or values (regression, one column)."""
        texts = text_list(texts)
        reading = Reading(self.long_text, self.stride, batch_size or self.default_batch_size, self.precision)
        return self.space.scores(predict_logits(self.model, self.encoder, texts, reading))

    def explain(self, texts: Iterable[str], method: str = "integrated-gradients", label: str | None = None,
                steps: int | None = None, *, abstention: Abstention | None = None) -> list[Prediction]:  # fmt: skip
        """Predictions with, in each one's `explanation`, the words that pushed it up or down (Captum).
        `abstention`: the rule to mark answers by [the classifier's]."""
        from .explain import STEPS, explain

        texts = answerable(texts)
        scores = self.predict_scores(texts)
        made = predictions(texts, scores, self.space, abstention or self.abstention)
        why = explain(self, texts, method=method, target=label, steps=steps or STEPS, scores=scores)
        return [p.model_copy(update={"explanation": e.to_json()}) for p, e in zip(made, why)]


def load_classifier(run_dir: str | Path, options: LoadOptions | None = None, **given: Any) -> Classifier:
    """The public entry point: a saved run, ready to predict and evaluate (`given`: LoadOptions' fields)."""
    return Classifier.from_run(run_dir, options, **given)
