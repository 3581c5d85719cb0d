"""OpenVINO: the merged model as OpenVINO IR (converted from torch by OpenVINO's PyTorch frontend), the fastest
engine measured on every CPU class.
int8 is NNCF static quantization: activation ranges measured on texts of the run's training split (or of
--calibration-data), so the evaluation split stays a fair test of the quantized model."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import UserError, first_line
from ..quiet import quiet_tracer
from .base import Engine
from .onnx import logits_module, trace_inputs
from .runtime_card import runtime_card

if TYPE_CHECKING:
    from ...config import TrainConfig
    from ...options import ExportOptions
    from ...runs.run import Run

MODEL_FILE = "openvino_model.xml"  # and its weights beside it, openvino_model.bin
CALIBRATION_BATCH = 16


class OpenVinoSession:
    """OpenVINO on the CPU. Unquantized layers run in bf16 where the CPU has it (AMX / AVX512-BF16), which
    `precision="fp32"` turns off; int8 layers (NNCF static quantization) run in int8 either way.

    "Has it" is asked of both OpenVINO and our CPU classifier: OpenVINO ignores ONEDNN_MAX_CPU_ISA, so a machine
    capped to stand in for a class without bf16 units runs OpenVINO in f32, as that class would."""

    device = "cpu (openvino)"

    def __init__(self, model_file: Path, threads: int, precision: str | None):
        import openvino

        core = openvino.Core()
        from ...modeling.cpu import this_cpu

        fast_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") and this_cpu().bf16_units
        self.compute = "bf16" if fast_bf16 and precision in (None, "auto", "bf16") else "fp32"
        self.hints = {"INFERENCE_NUM_THREADS": threads}
        self.hints["INFERENCE_PRECISION_HINT"] = "bf16" if self.compute == "bf16" else "f32"
        self.core, self.model_file, self.threads = core, str(model_file), threads
        # Read now (a damaged file fails here, at open), compiled on first use, for one request or for many:
        # a job of many batches never needs the one-request model, whose compile took 0.6 s of an int8 export's
        # `predict` on the 2-core amx host.
        self.inputs = [port.get_any_name() for port in core.read_model(self.model_file).inputs]
        self._request: Any = None
        self._streams: Any = None
        self._lock = threading.Lock()  # the requests are reused: one caller at a time (threads of the Python API)

    def _compiled(self, hint: str) -> Any:
        try:
            return self.core.compile_model(self.model_file, "CPU", {**self.hints, "PERFORMANCE_HINT": hint})
        except RuntimeError as exc:  # OpenVINO's own errors
            folder = Path(self.model_file).parent
            raise UserError(f"{folder} holds a damaged export: {first_line(exc)} (export the run again)") from exc

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            if self._request is None:
                self._request = self._compiled("LATENCY").create_infer_request()
            return self._request.infer(feeds)[0].copy()  # the request reuses its output buffer

    def map(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Many batches at once run side by side, a stream of one thread each (OpenVINO's THROUGHPUT hint): on
        the 2-core amx machine the loop took 7-14 % less time in bf16 and int8 than one request over both threads,
        f32 about the same (docs/benchmarks/cpu-classes.md). One request keeps a single text's latency (12.5 ms
        against 21 ms on one stream).

        The stream requests take the batches in turn and are waited on here, with no Python callback: with
        `AsyncInferQueue`'s callback, freeing the compiled model afterwards hung in 4 of 8 processes (its stream
        threads waited for the GIL that the freeing thread held; OpenVINO 2026.4.1)."""
        if len(batches) < 2 or self.threads < 2:
            return [self(feeds) for feeds in batches]
        with self._lock:
            return self._side_by_side(batches)

    def _side_by_side(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        if self._streams is None:
            compiled = self._compiled("THROUGHPUT")
            # Two requests a stream, so a stream that finishes its batch has the next one queued: the loop took
            # 1.5-3.5 % less time than with one a stream on each of two calls of 3 rounds (bf16 and int8, amx;
            # near the rounds' spread).
            count = 2 * compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
            self._streams = [compiled.create_infer_request() for _ in range(count)]
        out: list[Any] = [None] * len(batches)
        started: list[int | None] = [None] * len(self._streams)

        def collect(slot: int) -> None:
            if started[slot] is not None:
                self._streams[slot].wait()
                out[started[slot]] = self._streams[slot].get_output_tensor(0).data.copy()  # type: ignore[index]

        # The requests taken in turn (length-sorted batches cost about the same), each waited on before its next.
        for index, feeds in enumerate(batches):
            slot = index % len(self._streams)
            collect(slot)
            self._streams[slot].start_async(feeds)
            started[slot] = index
        for slot in range(len(self._streams)):
            collect(slot)
        return out


class OpenVino(Engine):
    name = "openvino"
    extra = "openvino"
    modules = ("openvino", "nncf")
    model_file = MODEL_FILE
    quantizations = ("none", "int8")
    title = "OpenVINO IR"

    def calibrates(self, options: ExportOptions) -> bool:
        return options.quantize == "int8"

    def prepare(self, run: Run, options: ExportOptions) -> list[str]:
        if not self.calibrates(options):
            return []
        return calibration_texts(run.config, options.calibration_data, options.calibration_samples)

    def write(
        self, model: Any, tokenizer: Any, run: Run, staging: Path, options: ExportOptions, prepared: Any
    ) -> list[str]:
        import openvino
        import torch

        # Converted from torch itself, not through an ONNX graph: OpenVINO's PyTorch frontend keeps
        # scaled_dot_product_attention one op, which its CPU plugin runs as one fused kernel, where the ONNX
        # graph spells attention out in matmuls, softmax and the mask's Select / IsNaN. On AMX that loop ran
        # 1.2-1.3x faster in bf16, and its int8 model kept more of f32's labels (docs/benchmarks/cpu-classes.md).
        names, sample = trace_inputs(model, tokenizer)
        dynamic = openvino.PartialShape([-1, -1])
        with torch.no_grad(), quiet_tracer():
            converted = openvino.convert_model(
                logits_module(model, names), example_input={n: sample[n] for n in names},
                input=[(n, dynamic, openvino.Type.i64) for n in names],
            )  # fmt: skip
        if prepared:
            converted = _quantized(converted, tokenizer, run, names, prepared, options.int8_scope)
        openvino.save_model(converted, str(staging / MODEL_FILE), compress_to_fp16=False)
        return names

    def session(self, model_file: Path, threads: int, precision: str | None) -> OpenVinoSession:
        return OpenVinoSession(model_file, threads, precision)

    def card(self, run: Run, options: ExportOptions) -> str:
        load = f"""import openvino
model = openvino.Core().compile_model("THIS_FOLDER/{MODEL_FILE}", "CPU")
logits = model({{p.get_any_name(): inputs[p.get_any_name()] for p in model.inputs}})[0]"""
        return runtime_card(run, self.name, options.quantize, ("openvino", "OpenVINO IR", "int8, NNCF", load))


# Each layer's output projections (attention's and the feed-forward's) in BERT / RoBERTa (output.dense),
# DistilBERT (out_lin, lin2) and GPT-2 (c_proj), as the PyTorch frontend names them (`...layer.0.output.dense/
# aten::linear/MatMul`) and as IR converted from ONNX did (`.../layer.0/output/dense/MatMul`). Kept in float
# by --int8-scope no-output-projections: on a MiniLM IMDB run int8 moved 0.8-0.9 % of labels with them, 0.5-0.7 %
# without (two calibration draws each, the ONNX-converted IR: a small gain, near that noise;
# docs/benchmarks/cpu-classes.md).
OUTPUT_PROJECTIONS = [
    r".*[./]output[./]dense/.*MatMul",
    r".*[./]out_lin/.*MatMul",
    r".*[./]lin2/.*MatMul",
    r".*[./]c_proj/.*",
]


def _quantized(converted: Any, tokenizer: Any, run: Run, names: list[str], texts: list[str], scope: str) -> Any:
    import nncf

    from ...data.encoding import TextEncoder, padded_batches

    encoder = TextEncoder.for_config(tokenizer, run.config)
    feeds = [f for _, f in padded_batches(tokenizer, encoder(texts), names, CALIBRATION_BATCH)]
    ignored = nncf.IgnoredScope(patterns=OUTPUT_PROJECTIONS, validate=False) if scope != "all" else None
    # TRANSFORMER keeps the softmax / layer-norm inputs in floating point, where int8 loses accuracy.
    return nncf.quantize(converted, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds),
                         ignored_scope=ignored)  # fmt: skip


def quantize_folder(f32: Path, out: Path, run: Run, samples: int, scope: str, keep_out: tuple[str, ...] = ()) -> None:
    """The export folder `f32` (this engine, unquantized) quantized into `out`, as `export --quantize int8` would
    write it, from its IR rather than from the run's torch model (which costs loading torch, merging and
    converting again). `keep_out`: more of `f32`'s files not to copy."""
    import json
    import shutil

    import openvino
    from transformers import AutoTokenizer

    from ...atomic import staged
    from ...options import ExportOptions
    from ...runs.run import EXPORT_CARD_FILE, EXPORT_INFO_FILE

    info = json.loads((f32 / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
    texts = calibration_texts(run.config, None, samples)
    tokenizer = AutoTokenizer.from_pretrained(str(f32))
    with staged(out) as staging:
        skipped = {MODEL_FILE, Path(MODEL_FILE).with_suffix(".bin").name, EXPORT_INFO_FILE, *keep_out}
        for file in f32.iterdir():
            if file.is_file() and file.name not in skipped:
                shutil.copy2(file, staging / file.name)
        model = openvino.Core().read_model(str(f32 / MODEL_FILE))
        model = _quantized(model, tokenizer, run, info["inputs"], texts, scope)
        openvino.save_model(model, str(staging / MODEL_FILE), compress_to_fp16=False)
        info = {**info, "quantization": "int8", "int8_scope": scope}
        (staging / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        options = ExportOptions(format="openvino", quantize="int8", int8_scope=scope)
        (staging / EXPORT_CARD_FILE).write_text(ENGINE.card(run, options), encoding="utf-8")


def calibration_texts(config: TrainConfig, data: str | None, samples: int, seed: int = 0) -> list[str]:
    """Up to `samples` non-empty texts, drawn at random from `data` (else the run's training split)."""
    from ...data.loading import load_splits
    from ...inference.evaluation import pick_split

    source = data or config.data
    try:
        ds = pick_split(load_splits(source, data_config=None if data else config.data_config),
                        None if data else config.train_split, source)  # fmt: skip
    except UserError as exc:
        fix = "check --calibration-data" if data else "int8 calibration reads the run's training data; pass " \
            "--calibration-data FILE"  # fmt: skip
        raise UserError(f"{str(exc).split(' (')[0]} ({fix})") from exc
    if config.text_column not in ds.column_names:
        raise UserError(
            f"{source} has no column {config.text_column!r} for int8 calibration; columns: "
            f"{', '.join(ds.column_names)} (pass --calibration-data FILE with that column)"
        )
    ds = ds.shuffle(seed=seed).select(range(min(samples, len(ds))))
    texts = [t for t in ds[config.text_column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise UserError(f"{source} has no texts for int8 calibration (pass --calibration-data FILE)")
    return texts


ENGINE = OpenVino()
