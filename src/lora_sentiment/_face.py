"""A subpackage's public face: names that load from their module on first use, so importing the package (for
one name, or for --help) costs nothing. Also keeps the names of the 0.2 flat modules working where a package
now stands at their path (`lora_sentiment.batch.predict_file`, `lora_sentiment.training.train`, ...)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """`__getattr__` and `__all__` for `package`, whose names live in its modules as `where` says."""

    def __getattr__(name: str) -> Any:
        if name in where:
            module = where[name]
            return getattr(import_module(module if module.startswith(".") else f".{module}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)
