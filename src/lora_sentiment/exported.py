"""An exported folder: its files, and the classifier that predicts from one without importing torch.

`lora-sentiment export RUN OUT --format onnx|openvino [--quantize int8]` writes OUT (export.py); `predict`,
`evaluate`, `serve` and batch files open OUT here wherever they take a run. Start-up counts: this module loads
numpy, the runtime (ONNX Runtime or OpenVINO) and a fast tokenizer, not torch."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import build_config
from .data import TextEncoder, mean_by_text
from .errors import UserError, first_line
from .outputs import Prediction, predictions
from .problem import LabelSpace
from .run import LABELS_FILE, RUN_CONFIG_FILE, Run

EXPORT_INFO_FILE = "export.json"  # what was exported, and how: the marker that tells an export from a run
ONNX_MODEL_FILE = "model.onnx"
OPENVINO_MODEL_FILE = "openvino_model.xml"  # and its weights beside it, openvino_model.bin
MODEL_FILES = {"onnx": ONNX_MODEL_FILE, "openvino": OPENVINO_MODEL_FILE}
# What each export format needs installed; the package extra of the same name brings it.
RUNTIME_MODULES = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino", "nncf")}
# An export carries the run's records under the run's own names (run.copy_records).
EXPORT_LABELS_FILE, EXPORT_CONFIG_FILE = LABELS_FILE, RUN_CONFIG_FILE


def export_format(path: str | Path) -> str | None:
    """ "onnx" or "openvino" for an export folder, None for anything else (a run)."""
    info = Path(path) / EXPORT_INFO_FILE
    if not info.is_file():
        return None
    try:
        return str(json.loads(info.read_text(encoding="utf-8")).get("format"))
    except ValueError:
        return "damaged"  # ExportedClassifier.open says what is wrong


def missing_modules(fmt: str) -> list[str]:
    """The modules exporting to (and running) `fmt` needs that are not installed here."""
    import importlib.util

    return [name for name in RUNTIME_MODULES[fmt] if importlib.util.find_spec(name) is None]


def is_export(path: str | Path) -> bool:
    return export_format(path) is not None


is_onnx_export = is_export  # the name before OpenVINO exports existed


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


class OpenVinoSession:
    """OpenVINO on the CPU. Unquantized layers run in bf16 where the CPU has it (AMX / AVX512-BF16), which
    `precision="fp32"` turns off; int8 layers (NNCF static quantization) run in int8 either way."""

    device = "cpu (openvino)"

    def __init__(self, model_file: Path, threads: int, precision: str | None):
        import openvino

        core = openvino.Core()
        fast_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.compute = "bf16" if fast_bf16 and precision in (None, "auto", "bf16") else "fp32"
        hints = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        hints["INFERENCE_PRECISION_HINT"] = "bf16" if self.compute == "bf16" else "f32"
        self.model = core.compile_model(str(model_file), "CPU", hints)
        self.inputs = [port.get_any_name() for port in self.model.inputs]
        self.request = self.model.create_infer_request()

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.request.infer(feeds)[0].copy()  # the request reuses its output buffer


RUNTIMES = {"onnx": OnnxRuntimeSession, "openvino": OpenVinoSession}


def padded_batches(
    tokenizer: Any, encoded: dict[str, list], inputs: Sequence[str], batch_size: int
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Length-sorted batches, as in the torch path, so little compute goes to padding: each batch's row
    positions in `encoded`, and the graph's inputs for it."""
    order = np.argsort(-np.array([len(ids) for ids in encoded["input_ids"]]), kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = tokenizer.pad([{k: encoded[k][i] for k in encoded} for i in index], return_tensors="np")
        feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in inputs if name in batch}
        if "token_type_ids" in inputs and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        yield index, feeds


class ExportedClassifier:
    """The predict side of a Classifier over an exported model (ONNX Runtime or OpenVINO): `predict`,
    `predict_scores`, `evaluate`."""

    model = None  # no torch module: the server's /info reads `device` instead

    def __init__(
        self,
        session: Any,
        encoder: Any,
        space: LabelSpace,
        info: dict,
        config: Any,
        *,
        long_text: str,
        stride: int | None,
    ):
        self.session = session
        self.run_config = config
        self.encoder = encoder
        self.space = space
        self.info = info
        self.precision = "int8" if info.get("quantization") == "int8" else session.compute
        self.long_text = long_text
        self.stride = stride
        self.inputs = session.inputs
        self.device = session.device

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @classmethod
    def open(
        cls,
        folder: str | Path,
        *,
        long_text: str = "truncate",
        stride: int | None = None,
        threads: int | None = None,
        precision: str | None = None,
    ) -> ExportedClassifier:
        from transformers import PreTrainedTokenizerFast  # the fast tokenizer alone: AutoTokenizer imports torch

        folder = Path(folder)
        info, space, config = _read_export(folder)
        runtime = RUNTIMES[info["format"]]
        try:
            session = runtime(folder / MODEL_FILES[info["format"]], threads or os.cpu_count() or 1, precision)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
        except ImportError as exc:
            raise UserError(
                f"{folder} is a {info['format']} export: pip install 'lora-sentiment[{info['format']}]'"
            ) from exc
        except Exception as exc:  # the runtimes and tokenizers raise their own types
            raise UserError(f"{folder} holds a damaged export: {first_line(exc)} (export the run again)") from exc
        encoder = TextEncoder.for_config(tokenizer, config)
        return cls(session, encoder, space, info, config, long_text=long_text, stride=stride)

    @property
    def default_batch_size(self) -> int:
        return 32

    def predict_scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.space.num_outputs))
        encoded, owners = self.encoder.encode(texts, self.long_text, self.stride)
        logits = self._forward(encoded, batch_size or self.default_batch_size)
        if self.long_text == "chunks":
            logits = mean_by_text(logits, owners, len(texts))
        return self.space.scores(logits)

    predict_proba = predict_scores

    def _forward(self, encoded: dict[str, list], batch_size: int) -> np.ndarray:
        out = np.empty((len(encoded["input_ids"]), self.space.num_outputs), dtype=np.float32)
        for index, feeds in padded_batches(self.encoder.tokenizer, encoded, self.inputs, batch_size):
            out[index] = self.session(feeds)
        return out

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        return predictions(texts, self.predict_scores(texts, batch_size), self.space)

    def evaluate(self, data: str, **options: Any) -> dict[str, Any]:
        from .evaluation import evaluate_on  # scikit-learn and datasets: only when evaluating

        return evaluate_on(self, data, **options)


def _read_export(folder: Path) -> tuple[dict, LabelSpace, Any]:
    if not folder.is_dir():
        raise UserError(f"export folder not found: {folder}")
    if not (folder / EXPORT_INFO_FILE).is_file():
        raise UserError(f"{folder} is not an export: {EXPORT_INFO_FILE} is missing (export the run again)")
    try:
        info = json.loads((folder / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
        model_file = MODEL_FILES[info["format"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{folder} holds a damaged export: {EXPORT_INFO_FILE} is unreadable (export the run again)"
        ) from exc
    for name in (model_file, EXPORT_LABELS_FILE, EXPORT_CONFIG_FILE, "tokenizer.json"):
        if not (folder / name).is_file():
            raise UserError(
                f"{folder} is not a complete {info['format']} export: {name} is missing (export the run again)"
            )
    try:
        space = LabelSpace.from_json(json.loads((folder / EXPORT_LABELS_FILE).read_text(encoding="utf-8")))
        config = build_config(config_file=folder / EXPORT_CONFIG_FILE)
    except (UserError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder} holds a damaged export: {first_line(exc)} (export the run again)") from exc
    return info, space, config


def open_classifier(path: str | Path, **options: Any) -> Any:
    """A run directory or an export, ready to predict. An export needs no torch; a run loads it."""
    if is_export(path):
        options.pop("device", None)  # exports run on the CPU
        return ExportedClassifier.open(path, **options)
    from .prediction import load_classifier

    return load_classifier(path, **options)


def check_predictor(path: str | Path) -> None:
    """Fail with the one-line error now if `path` is neither a finished run nor a complete export."""
    if is_export(path):
        _read_export(Path(path))
    else:
        Run.open(path)


def export_info(path: str | Path) -> dict[str, Any]:
    """What /info tells about an export: its recipe and the run's final evaluation."""
    folder = Path(path)
    info, space, config = _read_export(folder)
    metrics_file = folder / "metrics.json"
    final = json.loads(metrics_file.read_text(encoding="utf-8")).get("final", {}) if metrics_file.is_file() else {}
    return {
        "run": info.get("run", folder.name),
        "export": info,
        "base_model": config.model,
        "max_length": config.max_length,
        "truncation": config.truncation,
        "metrics": {k: v for k, v in final.items() if k not in ("confusion_matrix", "per_label")},
        "examples": config.examples,
    }


OnnxClassifier = ExportedClassifier  # the name before OpenVINO exports existed
