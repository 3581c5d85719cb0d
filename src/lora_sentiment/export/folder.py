"""An exported folder: its files, and the classifier that predicts from one without importing torch.

`lora-sentiment export RUN OUT --format onnx|openvino [--quantize int8]` writes OUT (writing.py); `predict`,
`evaluate`, `serve` and batch files open OUT here wherever they take a run. Start-up counts: this module loads
numpy, the runtime (ONNX Runtime or OpenVINO) and the `tokenizers` library, neither torch nor transformers."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import build_config
from ..data.encoding import SavedTokenizer, TextEncoder, mean_by_text, padded_batches, text_list
from ..errors import UserError, first_line
from ..inference.base import LoadOptions, PredictorBase
from ..problems.abstention import Abstention
from ..problems.space import LabelSpace
from ..runs.run import EXPORT_INFO_FILE, LABELS_FILE, METRICS_FILE, RUN_CONFIG_FILE, is_export
from .engines import ENGINES, engine

# An export carries the run's records under the run's own names (run.copy_records).
EXPORT_LABELS_FILE, EXPORT_CONFIG_FILE = LABELS_FILE, RUN_CONFIG_FILE
# In a run's compiled int8 model (export/int8_gate.py): the band near a boundary whose texts the unquantized
# compiled model beside it predicts again, and that model's folder name.
RECHECK_FILE = "recheck.json"
MAP_BATCHES = 64


is_onnx_export = is_export  # the name before OpenVINO exports existed


class ExportedClassifier(PredictorBase):
    """A Predictor over an exported model (ONNX Runtime or OpenVINO), without torch."""

    def __init__(
        self, session: Any, encoder: Any, space: LabelSpace, info: dict, config: Any, options: LoadOptions
    ) -> None:
        self.session = session
        self.run_config = config
        self.encoder = encoder
        self.space = space
        self.export = info  # export.json: format, quantization, the run it came from
        self.precision = "int8" if info.get("quantization") == "int8" else session.compute
        self.long_text = options.long_text
        self.stride = options.stride
        self.abstention = Abstention.of(options)
        self.inputs = session.inputs
        self.options = options
        self.recheck: tuple[float, Path] | None = None  # (band, the unquantized model's folder): set by open
        self._unquantized: ExportedClassifier | None = None  # opened on its first text

    @property
    def device(self) -> str:
        return self.session.device

    @classmethod
    def open(cls, folder: str | Path, options: LoadOptions | None = None, **given: Any) -> ExportedClassifier:
        """`given`: LoadOptions' fields; a precision of fp32 keeps OpenVINO off bf16, device is ignored (CPU)."""
        options = LoadOptions.of(options, given)
        folder = Path(folder)
        info, space, config = _read_export(folder)
        runtime = engine(info["format"])
        try:
            session = runtime.session(folder / str(runtime.model_file), options.threads or os.cpu_count() or 1,
                                      options.precision)  # fmt: skip
            tokenizer = SavedTokenizer.open(folder)
        except ImportError as exc:
            raise UserError(
                f"{folder} is a {info['format']} export: pip install 'lora-sentiment[{info['format']}]'"
            ) from exc
        except Exception as exc:  # the runtimes and tokenizers raise their own types
            raise UserError(f"{folder} holds a damaged export: {first_line(exc)} (export the run again)") from exc
        encoder = TextEncoder.for_config(tokenizer, config)
        classifier = cls(session, encoder, space, info, config, options)
        classifier.run_path = folder  # an export carries its run's record of the texts it saw
        if (folder / RECHECK_FILE).exists():
            classifier.recheck = read_recheck(folder)
        return classifier

    @property
    def default_batch_size(self) -> int:
        return 32

    def predict_scores(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        texts = text_list(texts)
        if len(texts) == 0:
            return np.zeros((0, self.space.num_outputs))
        encoded, owners = self.encoder.encode(texts, self.long_text, self.stride)
        logits = self._forward(encoded, batch_size or self.default_batch_size)
        if self.long_text == "chunks":
            logits = mean_by_text(logits, owners, len(texts))
        scores = self.space.scores(logits)
        return scores if self.recheck is None else self._rechecked(texts, scores, batch_size)

    def _rechecked(self, texts: Sequence[str], scores: np.ndarray, batch_size: int | None) -> np.ndarray:
        """The int8 scores with the texts near a boundary predicted again by the unquantized model."""
        band, unquantized = self.recheck  # type: ignore[misc]
        near = self.space.problem.near_boundary(self.space, scores, band)
        if near is None:
            return scores
        if self.abstention.min_confidence is not None:  # --min-confidence's line is a boundary too (both edges
            line = self.abstention.min_confidence  # of multi-label's uncertain band; any class's, to be safe)
            near |= (np.abs(scores - line) < band).any(axis=1) | (np.abs(scores - (1 - line)) < band).any(axis=1)
        if not near.any():
            return scores
        if self._unquantized is None:
            self._unquantized = ExportedClassifier.open(unquantized, self.options)
        scores[near] = self._unquantized.predict_scores([texts[i] for i in np.flatnonzero(near)], batch_size)
        return scores

    def info(self) -> dict[str, Any]:
        second = {"int8_recheck_band": self.recheck[0]} if self.recheck is not None else {}
        return {**super().info(), **second}

    def _forward(self, encoded: dict[str, list], batch_size: int) -> np.ndarray:
        out = np.empty((len(encoded["input_ids"]), self.space.num_outputs), dtype=np.float32)
        batches = padded_batches(self.encoder.tokenizer, encoded, self.inputs, batch_size)
        # Handed to the session MAP_BATCHES at a time (it may run them side by side), so a long list's padded
        # arrays are not all in memory at once.
        while group := list(itertools.islice(batches, MAP_BATCHES)):
            for (index, _), logits in zip(group, self.session.map([feeds for _, feeds in group]), strict=True):
                out[index] = logits
        return out


def _read_export(folder: Path) -> tuple[dict, LabelSpace, Any]:
    if not folder.is_dir():
        raise UserError(f"export folder not found: {folder}")
    if not (folder / EXPORT_INFO_FILE).is_file():
        raise UserError(f"{folder} is not an export: {EXPORT_INFO_FILE} is missing (export the run again)")
    try:
        info = json.loads((folder / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
        if info["format"] not in ENGINES or engine(info["format"]).model_file is None:
            raise KeyError(info["format"])
        model_file = engine(info["format"]).model_file
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


def read_recheck(folder: Path) -> tuple[float, Path]:
    """An int8 model's second look: the band and the unquantized model's folder (a complete export)."""
    try:
        record = json.loads((folder / RECHECK_FILE).read_text(encoding="utf-8"))
        band, unquantized = float(record["band"]), folder.parent / str(record["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder} holds a damaged {RECHECK_FILE}: {first_line(exc)} (delete the folder)") from exc
    _read_export(unquantized)
    return band, unquantized


def check_export(path: str | Path) -> None:
    """Fail with the one-line error now if `path` is not a complete export."""
    _read_export(Path(path))


def export_records(path: str | Path) -> tuple[Any, LabelSpace]:
    """The TrainConfig and LabelSpace an export carries."""
    _, space, config = _read_export(Path(path))
    return config, space


def export_info(path: str | Path) -> dict[str, Any]:
    """What /info tells about an export: its recipe and the run's final evaluation."""
    folder = Path(path)
    info, space, config = _read_export(folder)
    metrics_file = folder / METRICS_FILE
    final = json.loads(metrics_file.read_text(encoding="utf-8")).get("final", {}) if metrics_file.is_file() else {}
    return {
        "run": info.get("run", folder.name),
        "export": info,
        "base_model": config.model,
        "max_length": config.max_length,
        "truncation": config.truncation,
        "metrics": {k: v for k, v in final.items() if k not in ("confusion_matrix", "per_label")},
        "headline": list(space.problem.headline_of(final)),
        "examples": config.examples,
    }


OnnxClassifier = ExportedClassifier  # the name before OpenVINO exports existed
