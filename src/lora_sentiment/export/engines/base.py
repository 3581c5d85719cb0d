"""The engine interface: what `export --format NAME` writes, what opens the result, and what its card says."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ...errors import UserError

if TYPE_CHECKING:
    from ...options import ExportOptions
    from ...runs.run import Run


class Session(Protocol):
    """A compiled model of an export, on the CPU: `session(feeds)` -> logits."""

    device: str  # what /info shows, e.g. "cpu (onnxruntime)"
    compute: str  # the precision it runs in: fp32 or bf16 (int8 layers run in int8 either way)
    inputs: list[str]  # the graph's input names

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...

    def map(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Logits of many batches, in order: a job's whole set, which a runtime may run side by side."""
        ...


class Engine:
    name: ClassVar[str]  # the --format value
    extra: ClassVar[str | None] = None  # the package extra that installs its runtime
    modules: ClassVar[tuple[str, ...]] = ()  # what exporting to it (and running it) imports
    model_file: ClassVar[str | None] = None  # the model file in an export folder; None: no runtime of ours opens it
    quantizations: ClassVar[tuple[str, ...]] = ("none",)
    title: ClassVar[str]  # what the log line and card call it

    def missing_modules(self) -> list[str]:
        return [name for name in self.modules if importlib.util.find_spec(name) is None]

    def check(self, options: ExportOptions) -> None:
        """Refuse options this engine cannot honour, before any model loads."""
        if options.calibration_data and not self.calibrates(options):
            raise UserError("--calibration-data is for --format openvino --quantize int8")
        missing = self.missing_modules()
        if missing:
            needs = ", ".join(missing)
            raise UserError(f"--format {self.name} needs {needs}: pip install 'lora-sentiment[{self.extra}]'")
        if options.quantize not in self.quantizations:
            raise UserError("--quantize needs --format onnx or openvino")
        if options.int8_scope != "all" and not self.calibrates(options):
            raise UserError("--int8-scope is for --format openvino --quantize int8")

    def calibrates(self, options: ExportOptions) -> bool:
        """Whether this export reads calibration texts."""
        return False

    def prepare(self, run: Run, options: ExportOptions) -> Any:
        """Work read from files before the model loads (a bad file then fails at once); handed to `write`."""
        return None

    def write(
        self, model: Any, tokenizer: Any, run: Run, staging: Path, options: ExportOptions, prepared: Any
    ) -> list[str]:
        """The merged model into `staging`, in this engine's format; the graph's input names (runtime engines)."""
        raise NotImplementedError

    def session(self, model_file: Path, threads: int, precision: str | None) -> Session:
        """The runtime over an export's model file."""
        raise NotImplementedError(f"{self.name} exports are opened by transformers, not by an engine session")

    def card(self, run: Run, options: ExportOptions) -> str:
        """The export's README.md."""
        raise NotImplementedError

    def done(self, run: Run, out_dir: Path, options: ExportOptions) -> str:
        """The log line once the export is in place."""
        weights = "int8" if options.quantize == "int8" else "fp32"
        return f"Exported {run.path} as {self.name} ({weights} weights) to {out_dir}"
