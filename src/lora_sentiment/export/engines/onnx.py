"""ONNX Runtime: the merged model as an ONNX graph (dynamic batch and sequence axes), fp32 or int8 weights
(dynamic quantization: per-channel weight scales, activations quantized per batch at run time, no calibration)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..quiet import quiet_tracer
from .base import Engine
from .runtime_card import runtime_card

if TYPE_CHECKING:
    from ...options import ExportOptions
    from ...runs.run import Run

MODEL_FILE = "model.onnx"
OPSET = 17


class OnnxRuntimeSession:
    """ONNX Runtime on the CPU: fp32, or int8 weights with activations quantized per batch."""

    device = "cpu (onnxruntime)"

    def __init__(self, model_file: Path, threads: int, precision: str | None):
        import onnxruntime  # the optional extra: only an export needs it

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.compute = "fp32"

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], feeds)[0]

    def map(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        return [self(feeds) for feeds in batches]


class Onnx(Engine):
    name = "onnx"
    extra = "onnx"
    modules = ("onnx", "onnxruntime")
    model_file = MODEL_FILE
    quantizations = ("none", "int8")
    title = "ONNX"

    def write(
        self, model: Any, tokenizer: Any, run: Run, staging: Path, options: ExportOptions, prepared: Any
    ) -> list[str]:
        return write_onnx(model, tokenizer, staging / MODEL_FILE, options.quantize)

    def session(self, model_file: Path, threads: int, precision: str | None) -> OnnxRuntimeSession:
        return OnnxRuntimeSession(model_file, threads, precision)

    def card(self, run: Run, options: ExportOptions) -> str:
        load = f"""import onnxruntime
session = onnxruntime.InferenceSession("THIS_FOLDER/{MODEL_FILE}")
feeds = {{n.name: inputs[n.name] for n in session.get_inputs()}}
logits = session.run(["logits"], feeds)[0]"""
        return runtime_card(run, self.name, options.quantize, ("onnx", "ONNX", "int8 weights", load))


def write_onnx(model: Any, tokenizer: Any, path: Path, quantize: str) -> list[str]:
    """The model's graph at `path` (int8 weights with `quantize="int8"`); the graph's input names."""
    import torch

    names, sample = trace_inputs(model, tokenizer)
    plain = path.with_name("model.fp32.onnx") if quantize == "int8" else path
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with torch.no_grad(), quiet_tracer(), eager_attention(model):
        torch.onnx.export(
            logits_module(model, names), (), str(plain), kwargs={n: sample[n] for n in names}, input_names=names,
            output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # One scale per output channel: on the MiniLM test run it kept 99.0 % of the fp32 labels where one
        # scale per tensor kept 96.3 % (docs/benchmarks/engines.md).
        quantize_dynamic(str(plain), str(path), weight_type=QuantType.QInt8, per_channel=True)
        plain.unlink()
    return names


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """The model traced with transformers' eager attention, then given back its own. The exporter spells SDPA out
    in matmuls, a softmax and the mask's Where / IsNaN; eager attention's matmuls, mask Add and softmax ran 1.15x
    faster in ONNX Runtime fp32 and 1.19x in dynamic int8, with the same probabilities (1e-6), on a MiniLM run
    (docs/benchmarks/engines.md). Plain ONNX ops either way, so the graph stays portable."""
    own = getattr(model.config, "_attn_implementation", None)
    switch = hasattr(model, "set_attn_implementation") and own not in (None, "eager")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(own)


def trace_inputs(model: Any, tokenizer: Any) -> tuple[list[str], dict[str, Any]]:
    """The graph's input names (those of the tokenizer's outputs the model takes) and a batch to trace it on:
    two texts of different lengths, so one row is padded and the attention mask's path is the one traced."""
    accepted = set(inspect.signature(model.forward).parameters)
    sample = tokenizer(
        ["A sample review to trace.", "Another, longer sample review to trace the graph."],
        padding=True,
        return_tensors="pt",
    )
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample and n in accepted], sample


def logits_module(model: Any, names: list[str]) -> Any:
    """The classifier with plain tensor inputs, by name, and one output: the shape a traced graph takes."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:  # fmt: skip
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.model(**{n: given[n] for n in names}).logits

    return Logits()


ENGINE = Onnx()
