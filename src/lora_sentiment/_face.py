"""Loading on first use, for the two kinds of lookup the package has: a subpackage's public face (names that load
from their module when first asked for, so importing the package, or --help, costs nothing; it also keeps the
0.2 names working where a package now stands at a flat module's path), and a registry of swappable parts
(problem types, engines) whose modules load when a part is first asked for."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def lazy(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """`__getattr__` and `__all__` for `package`, whose names live in its modules as `where` says."""

    def __getattr__(name: str) -> Any:
        if name in where:
            module = where[name]
            return getattr(import_module(module if module.startswith(".") else f".{module}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)


class Registry(Generic[T]):
    """name -> the `attribute` of module `package.modules[name]`, imported when first asked for."""

    def __init__(self, package: str, modules: dict[str, str], attribute: str, unknown: Callable[[str], Exception]):
        self.package, self.modules, self.attribute, self.unknown = package, modules, attribute, unknown
        self._loaded: dict[str, T] = {}

    def __call__(self, name: str) -> T:
        if name not in self._loaded:
            if name not in self.modules:
                raise self.unknown(name)
            module = import_module(f".{self.modules[name]}", self.package)
            self._loaded[name] = getattr(module, self.attribute)
        return self._loaded[name]
