"""An exported folder: its files, and the ONNX classifier that predicts from one without importing torch.

`lora-sentiment export RUN OUT --format onnx [--quantize int8]` writes OUT (export.py); `predict`, `evaluate`,
`serve` and batch files open OUT here wherever they take a run. Start-up counts: this module loads numpy,
onnxruntime and a fast tokenizer, not torch."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
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
# An export carries the run's records under the run's own names (run.copy_records).
EXPORT_LABELS_FILE, EXPORT_CONFIG_FILE = LABELS_FILE, RUN_CONFIG_FILE


def is_onnx_export(path: str | Path) -> bool:
    info = Path(path) / EXPORT_INFO_FILE
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("format") == "onnx"
    except ValueError:
        return True  # a damaged marker: OnnxClassifier.open says what is wrong


class OnnxClassifier:
    """The predict side of a Classifier over an ONNX Runtime session: `predict`, `predict_scores`, `evaluate`."""

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
        self.precision = "int8" if info.get("quantization") == "int8" else "fp32"
        self.long_text = long_text
        self.stride = stride
        self.inputs = [i.name for i in session.get_inputs()]
        self.device = "cpu (onnxruntime)"

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @classmethod
    def open(
        cls, folder: str | Path, *, long_text: str = "truncate", stride: int | None = None, threads: int | None = None
    ) -> OnnxClassifier:
        import onnxruntime  # the optional extra: only an export needs it
        from transformers import PreTrainedTokenizerFast  # the fast tokenizer alone: AutoTokenizer imports torch

        folder = Path(folder)
        info, space, config = _read_export(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        try:
            session = onnxruntime.InferenceSession(
                str(folder / ONNX_MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise UserError(f"{folder} holds a damaged ONNX export: {first_line(exc)} (export the run again)") from exc
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
        """Length-sorted batches, as in the torch path, so little compute goes to padding."""
        count = len(encoded["input_ids"])
        order = np.argsort(-np.array([len(ids) for ids in encoded["input_ids"]]), kind="stable")
        out = np.empty((count, self.space.num_outputs), dtype=np.float32)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            batch = self.encoder.tokenizer.pad(
                [{k: encoded[k][i] for k in encoded} for i in index], return_tensors="np"
            )
            feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in self.inputs if name in batch}
            if "token_type_ids" in self.inputs and "token_type_ids" not in feeds:
                feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
            out[index] = self.session.run(["logits"], feeds)[0]
        return out

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        return predictions(texts, self.predict_scores(texts, batch_size), self.space)

    def evaluate(self, data: str, **options: Any) -> dict[str, Any]:
        from .evaluation import evaluate_on  # scikit-learn and datasets: only when evaluating

        return evaluate_on(self, data, **options)


def _read_export(folder: Path) -> tuple[dict, LabelSpace, Any]:
    if not folder.is_dir():
        raise UserError(f"export folder not found: {folder}")
    for name in (EXPORT_INFO_FILE, ONNX_MODEL_FILE, EXPORT_LABELS_FILE, EXPORT_CONFIG_FILE, "tokenizer.json"):
        if not (folder / name).is_file():
            raise UserError(f"{folder} is not a complete ONNX export: {name} is missing (export the run again)")
    try:
        info = json.loads((folder / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
        space = LabelSpace.from_json(json.loads((folder / EXPORT_LABELS_FILE).read_text(encoding="utf-8")))
        config = build_config(config_file=folder / EXPORT_CONFIG_FILE)
    except (UserError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder} holds a damaged ONNX export: {first_line(exc)} (export the run again)") from exc
    if info.get("format") != "onnx":
        raise UserError(f"{folder}: {EXPORT_INFO_FILE} says format {info.get('format')!r}, not onnx")
    return info, space, config


def open_classifier(path: str | Path, **options: Any) -> Any:
    """A run directory or an ONNX export, ready to predict. An export needs no torch; a run loads it."""
    if is_onnx_export(path):
        options.pop("precision", None)  # an export runs in the precision it was exported in
        options.pop("device", None)
        return OnnxClassifier.open(path, **options)
    from .prediction import load_classifier

    return load_classifier(path, **options)


def check_predictor(path: str | Path) -> None:
    """Fail with the one-line error now if `path` is neither a finished run nor a complete ONNX export."""
    if is_onnx_export(path):
        _read_export(Path(path))
    else:
        Run.open(path)


def export_info(path: str | Path) -> dict[str, Any]:
    """What /info tells about an ONNX export: its recipe and the run's final evaluation."""
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
