"""The engines a run is exported for, each one module here behind the `Engine` interface (base.py): its writer,
its runtime session (how `predict`, `evaluate` and `serve` run an export without torch) and its card text.

Adding an engine: one module here with a subclass of `Engine` and its line in `ENGINES`, plus the package extra
that brings its runtime (pyproject.toml); docs/architecture.md has the checklist. Modules load on first use."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Engine

# name (the --format value) -> module in this package holding its `ENGINE`. Order = --help's order.
ENGINES: dict[str, str] = {
    "transformers": "transformers",
    "onnx": "onnx",
    "openvino": "openvino",
}
_LOADED: dict[str, Engine] = {}


def engine(name: str) -> Engine:
    if name not in _LOADED:
        if name not in ENGINES:
            from ...errors import UserError

            raise UserError(f"unknown --format {name!r}; choose one of: {', '.join(ENGINES)}")
        _LOADED[name] = import_module(f".{ENGINES[name]}", __name__).ENGINE
    return _LOADED[name]
