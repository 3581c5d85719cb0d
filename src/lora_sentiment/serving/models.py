"""What a server serves: one run or export on its own (merged, the fast path), or several runs on shared bases,
with the folder they come from watched for runs that appear, are retrained or disappear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException

from ..config import ServeSettings
from ..errors import UserError, first_line
from ..inference.base import Predictor
from ..options import LoadOptions
from .batcher import Request


class OneModel:
    """One run (merged, today's fast path) or one export: every request's texts go into one forward pass."""

    runs_dir = None  # it follows no folder: nothing to look for

    def __init__(self, classifier: Predictor, name: str, info: dict[str, Any], path: str | None = None):
        self.classifier, self.info, self.path = classifier, info, path
        self.names = [name]
        self.explainers: dict[str, Any] = {}

    def explainer(self, name: str) -> Any:
        """The run's torch model for /explain: the served one when it is that, else loaded on the first call."""
        if hasattr(self.classifier, "model"):
            return self.classifier
        return _explainer(self.explainers, name, self.path)

    def get(self, name: str) -> Predictor | None:
        return self.classifier if name in self.names else None

    def predict_many(self, requests: list[Request]) -> list[np.ndarray]:
        texts = [text for _, request_texts in requests for text in request_texts]
        scores = self.classifier.predict_scores(texts)
        bounds = np.cumsum([0] + [len(request_texts) for _, request_texts in requests])
        return [scores[start:end] for start, end in zip(bounds[:-1], bounds[1:])]

    def run_info(self, name: str) -> dict[str, Any]:
        return self.info

    def refresh(self) -> None:
        pass

    def warm(self) -> None:
        """One text through the model before the first request: an OpenVINO model compiles its one-request form
        on first use (0.6 s on the 2-core amx host), which the first client would otherwise wait for. A model
        that fails it still serves: each request then gets the failure as its own 500."""
        try:
            self.classifier.predict_scores(["A warm-up text."])
        except Exception as exc:  # whatever the model raises, the server starts
            print(f"lora-sentiment: the model failed a warm-up text: {first_line(exc)}", flush=True)


class ManyModels:
    """Several runs sharing their base models' weights (a ClassifierSet), and the folder they come from, if any,
    which `refresh` reads again: runs finished since are loaded, removed ones dropped, damaged ones skipped. Exports,
    named or in the folder, are served beside them, each on its own (it holds its own merged weights)."""

    def __init__(
        self,
        classifiers: Any,  # a ClassifierSet: a PredictorSet that also adds, drops and syncs runs
        runs_dir: str | None = None,
        log: Callable[[str], None] = print,
        fixed: dict[str, Any] | None = None,
        exports: dict[str, OneModel] | None = None,
        options: LoadOptions | None = None,
    ):
        self.classifiers, self.runs_dir, self.log = classifiers, runs_dir, log
        # Runs named on the command line: kept whatever the folder holds, and they win a name clash with it.
        self.fixed = dict(fixed or {})
        self.exports = dict(exports or {})  # named on the command line too: they win a clash with the folder's runs
        self.options = options or LoadOptions()  # how the folder's exports are opened
        self._folder_exports: dict[str, tuple[Path, tuple[int, int]]] = {}  # served from the folder, and their version
        self._skipped_exports: dict[str, tuple[Path, tuple[int, int]]] = {}

    @property
    def names(self) -> list[str]:
        return [*self.exports, *(name for name in self.classifiers.names if name not in self.exports)]

    def get(self, name: str) -> Predictor | None:
        if name in self.exports:
            return self.exports[name].classifier
        return self.classifiers[name] if name in self.classifiers else None

    def predict_many(self, requests: list[Request]) -> list[np.ndarray | Exception]:
        """As ClassifierSet.predict_many, an export's requests each through its own model; a request for a model
        dropped while it waited gets its own 404."""
        results: list[np.ndarray | Exception] = [
            HTTPException(404, f"model {name!r} was removed; models: {', '.join(self.names) or 'none'}")
            for name, _ in requests
        ]
        for i, (name, texts) in enumerate(requests):
            if name in self.exports:
                try:
                    results[i] = self.exports[name].classifier.predict_scores(texts)
                except Exception as exc:  # whatever its runtime raises: that request's 500, not the whole batch's
                    results[i] = exc
        known = [i for i, (name, _) in enumerate(requests) if name not in self.exports and name in self.classifiers]
        if known:
            for i, scores in zip(known, self.classifiers.predict_many([requests[i] for i in known])):
                results[i] = scores
        return results

    def run_info(self, name: str) -> dict[str, Any]:
        if name in self.exports:
            return self.exports[name].info
        return self.classifiers.member(name).info

    def explainer(self, name: str) -> Any:
        """A run of a shared base, on its own and merged for /explain, loaded on the first call for it."""
        if name in self.exports:
            return self.exports[name].explainer(name)  # 400: an export has no torch model to explain with
        explainers = self.__dict__.setdefault("explainers", {})
        return _explainer(explainers, name, str(self.classifiers.member(name).run.path))

    def warm(self) -> None:
        for export in self.exports.values():  # torch runs' weights are loaded by now; an export compiles on first use
            export.warm()

    def refresh(self) -> None:
        if self.runs_dir is None:
            return
        from ..runs.run import find_runs, is_export

        found = find_runs(self.runs_dir)
        named = {name for name in self.exports if name not in self._folder_exports} | set(self.fixed)  # these win
        self._sync_exports({n: Path(p) for n, p in found.items() if is_export(p) and n not in named})
        runs = {name: path for name, path in found.items() if name not in self.exports and not is_export(path)}
        self.classifiers.sync({**runs, **self.fixed}, self.log)

    def _sync_exports(self, found: dict[str, Path]) -> None:
        """The folder's exports, as ClassifierSet.sync keeps its runs: new or re-exported ones opened, removed ones
        dropped, a damaged one skipped with one line per version of its files."""
        from ..opening import describe
        from ..runs.run import EXPORT_INFO_FILE, file_version

        for name in [n for n in self._folder_exports if n not in found]:
            del self._folder_exports[name], self.exports[name]
            self.log(f"dropped model {name!r}: its export is gone")
        for name, path in found.items():
            version = (path, file_version(path / EXPORT_INFO_FILE))
            if self._folder_exports.get(name) == version or self._skipped_exports.get(name) == version:
                continue
            try:
                opened = OneModel(_opened_alone(path, self.options), name, describe(path), str(path))
            except UserError as exc:
                self._skipped_exports[name] = version
                self.log(f"skipped {path}: {exc}")
                continue
            self._skipped_exports.pop(name, None)
            self.log(f"{'reloaded' if name in self._folder_exports else 'loaded'} model {name!r} from {path}")
            self.exports[name], self._folder_exports[name] = opened, version


def _explainer(cache: dict[str, Any], name: str, path: str | None) -> Any:
    """A run's own torch Classifier (fp32: gradients), kept for later calls; an export has none (400)."""
    from ..runs.run import is_export

    if name not in cache:
        if path is None or is_export(path):
            raise HTTPException(400, "explanations need a run's torch model; this server serves an export")
        from ..inference.classifier import load_classifier

        cache[name] = load_classifier(path, engine="torch", precision="fp32")
    return cache[name]


def open_models(
    specs: list[str], runs_dir: str | None, settings: ServeSettings, options: LoadOptions
) -> OneModel | ManyModels:
    """What `serve` was given, loaded: one run or export on its own keeps the merged fast path."""
    from ..inference.shared_base import ClassifierSet
    from ..opening import describe
    from ..runs.run import is_export, parse_named_runs

    if not specs and not runs_dir:
        raise UserError("give a RUN to serve, several, or --runs-dir DIR")
    named = parse_named_runs(specs)
    if len(named) == 1 and not runs_dir:
        ((name, path),) = named.items()
        return OneModel(_opened_alone(path, options), name, describe(path), str(path))
    exports = {name: OneModel(_opened_alone(path, options), name, describe(path), str(path))
               for name, path in named.items() if is_export(path)}  # fmt: skip
    runs = {name: path for name, path in named.items() if name not in exports}
    classifiers = ClassifierSet(options, mixing=settings.adapter_batching)
    for name, path in runs.items():
        classifiers.add(name, path)
    log = lambda line: print(f"lora-sentiment: {line}", flush=True)  # noqa: E731
    models = ManyModels(classifiers, runs_dir, log=log, fixed=runs, exports=exports, options=options)
    models.refresh()
    if runs_dir and not models.names:
        print(f"lora-sentiment: no finished run under {runs_dir} yet; serving as they appear", flush=True)
    return models


def _opened_alone(path: Any, options: LoadOptions) -> Predictor:
    from ..opening import open_predictor

    predictor = open_predictor(path, options)
    assert isinstance(predictor, Predictor)
    return predictor
