"""The engines a run is exported for, each one module here behind the `Engine` interface (base.py): its writer,
its runtime session (how `predict`, `evaluate` and `serve` run an export without torch) and its card text.

Adding an engine: one module here with a subclass of `Engine` and its line in `ENGINES`, plus the package extra
that brings its runtime (pyproject.toml); docs/architecture.md has the checklist. Modules load on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._face import Registry

if TYPE_CHECKING:
    from .base import Engine

# name (the --format value) -> module in this package holding its `ENGINE`. Order = --help's order.
ENGINES: dict[str, str] = {
    "transformers": "transformers",
    "onnx": "onnx",
    "openvino": "openvino",
}


def _unknown(name: str) -> Exception:
    from ...errors import UserError

    return UserError(f"unknown --format {name!r}; choose one of: {', '.join(ENGINES)}")


engine: Registry[Engine] = Registry(__name__, ENGINES, "ENGINE", _unknown)  # the engine of a --format value
