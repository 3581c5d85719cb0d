"""Import paths of the flat layout (0.2), kept working for one release: `lora_sentiment.prediction` and the
other old module names resolve to the module's new home, with a DeprecationWarning naming it.

Aliases, not copies: `lora_sentiment.prediction is lora_sentiment.inference.classifier`, so a monkeypatch or an
isinstance check through either name sees the same objects."""

from __future__ import annotations

import importlib
import sys
import warnings
from importlib.machinery import ModuleSpec

# The old module (0.2) -> its home since 0.3 (docs/architecture.md lists them). Where a package now stands at an
# old module's path (batch, bench, data, export, training), its face (__init__.py) keeps the old names.
MOVED = {
    "baseline": "training.baseline",
    "card": "runs.card",
    "device": "modeling.device",
    "distributed": "modeling.distributed",
    "enginebench": "bench.engines",
    "evaluation": "inference.evaluation",
    "exported": "export.folder",
    "labels": "problems.targets",
    "loadtest": "bench.serve_load",
    "metrics": "problems.metrics",
    "model": "modeling.model",
    "multi": "inference.shared_base",
    "outputs": "problems.outputs",
    "plots": "runs.figures",
    "prediction": "inference.classifier",
    "problem": "problems.space",
    "raybatch": "batch.ray_data",
    "run": "runs.run",
    "serve": "serving.app",
    "tracking": "training.tracking",
    "tuning": "training.tuning",
}
_PACKAGE = "lora_sentiment."


class _Alias:
    """A meta-path finder and loader (by protocol: importlib.abc costs 16 ms of every start-up)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        old = fullname.removeprefix(_PACKAGE)
        if not fullname.startswith(_PACKAGE) or old not in MOVED or _PACKAGE + MOVED[old] == fullname:
            return None
        return ModuleSpec(fullname, self)

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: object) -> None:
        old = module.__name__.removeprefix(_PACKAGE)  # type: ignore[attr-defined]
        new = _PACKAGE + MOVED[old]
        warnings.warn(f"{module.__name__} is deprecated: import {new}", DeprecationWarning, stacklevel=2)
        # The import system hands out whatever sys.modules holds under the name once this returns: the new module.
        sys.modules[module.__name__] = importlib.import_module(new)  # type: ignore[attr-defined]


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
