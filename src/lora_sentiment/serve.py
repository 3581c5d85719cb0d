"""Serve stage: a trained run behind a small FastAPI app, with micro-batching and a page at `/`.

Requests that arrive within a short window (or while the model is busy) are merged into one forward pass:
per-text cost falls with batch size, so concurrent clients get more throughput than one-at-a-time.

No `from __future__ import annotations` here: FastAPI reads the request model from the endpoint's annotations,
and that model is built per app (its limits are settings), inside `create_app`."""

import asyncio
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .config import API_KEY_ENV, ServeSettings
from .errors import UserError
from .exported import export_info, is_export, open_classifier
from .outputs import PredictionOut
from .run import run_info

__all__ = [
    "API_KEY_ENV",
    "ManyModels",
    "MicroBatcher",
    "OneModel",
    "ServeSettings",
    "api_key_from_env",
    "create_app",
    "open_models",
    "run_info",
    "serve",
]


class PredictResponse(BaseModel):
    model: str
    predictions: list[PredictionOut]


Request = tuple[str | None, list[str]]  # (model name, texts)


class MicroBatcher:
    """Queues requests and runs them through `predict` together: one call for every request that arrived
    within `wait_s` of the first, up to `max_texts` texts, whichever models they name (`predict` takes the
    (model, texts) requests and returns one score array per request). Runs on the server's event loop; the
    models run in one worker thread, so the loop keeps accepting requests meanwhile."""

    def __init__(self, predict: Callable[[list[Request]], list[np.ndarray]], *, wait_s: float, max_texts: int):
        self.predict = predict
        self.wait_s = wait_s
        self.max_texts = max_texts
        self.queue: asyncio.Queue[tuple[Request, asyncio.Future]] | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.batches = 0
        self.texts = 0
        self._task: asyncio.Task | None = None
        self._held: tuple[Request, asyncio.Future] | None = None  # a request that did not fit the last batch

    async def start(self) -> None:
        # Made here, not in __init__: each server start (lifespan) gets its own loop-bound queue and thread.
        self.queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._held = None
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.executor:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def in_model_thread(self, function: Callable[[], Any]) -> Any:
        """Run `function` in the models' thread, between forward passes (loading or dropping a model)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function)

    async def submit(self, texts: list[str], model: str | None = None) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(((model, texts), future))
        return await future

    async def _collect(self) -> list[tuple[Request, asyncio.Future]]:
        held, self._held = self._held, None
        items = [held if held is not None else await self.queue.get()]
        if self.wait_s <= 0:
            return items  # no micro-batching: every request is its own forward pass
        count = len(items[0][0][1])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while count < self.max_texts:
            remaining = deadline - loop.time()
            try:
                item = (
                    self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if count + len(item[0][1]) > self.max_texts:
                self._held = item  # first into the next batch, so it keeps its place
                break
            items.append(item)
            count += len(item[0][1])
        return items

    async def _run(self) -> None:
        while True:
            items = await self._collect()
            items = [(request, future) for request, future in items if not future.done()]  # clients that left
            if not items:
                continue
            requests = [request for request, _ in items]
            try:
                scores = await self.in_model_thread(partial(self.predict, requests))
            except Exception as exc:
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += sum(len(texts) for _, texts in requests)
            for (_, future), result in zip(items, scores):
                if future.done():
                    continue
                if isinstance(result, Exception):  # this request alone failed (its model was dropped)
                    future.set_exception(result)
                else:
                    future.set_result(result)


class OneModel:
    """One run (merged, today's fast path) or one export: every request's texts go into one forward pass."""

    runs_dir = None  # it follows no folder: nothing to look for

    def __init__(self, classifier: Any, name: str, info: dict[str, Any]):
        self.classifier, self.info = classifier, info
        self.names = [name]

    def get(self, name: str) -> Any:
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


class ManyModels:
    """Several runs sharing their base models' weights (a ClassifierSet), and the folder they come from, if any,
    which `refresh` reads again: runs finished since are loaded, removed ones dropped, damaged ones skipped."""

    def __init__(
        self,
        classifiers: Any,
        runs_dir: str | None = None,
        log: Callable[[str], None] = print,
        fixed: dict[str, Any] | None = None,
    ):
        self.classifiers, self.runs_dir, self.log = classifiers, runs_dir, log
        # Runs named on the command line: kept whatever the folder holds, and they win a name clash with it.
        self.fixed = dict(fixed or {})

    @property
    def names(self) -> list[str]:
        return self.classifiers.names

    def get(self, name: str) -> Any:
        return self.classifiers[name] if name in self.classifiers else None

    def predict_many(self, requests: list[Request]) -> list[np.ndarray | Exception]:
        """As ClassifierSet.predict_many; a request for a model dropped while it waited gets its own 404."""
        known = [i for i, (name, _) in enumerate(requests) if name in self.classifiers]
        results: list[np.ndarray | Exception] = [
            HTTPException(404, f"model {name!r} was removed; models: {', '.join(self.names) or 'none'}")
            for name, _ in requests
        ]
        if known:
            for i, scores in zip(known, self.classifiers.predict_many([requests[i] for i in known])):
                results[i] = scores
        return results

    def run_info(self, name: str) -> dict[str, Any]:
        return self.classifiers.member(name).info

    def refresh(self) -> None:
        if self.runs_dir is not None:
            from .run import find_runs

            self.classifiers.sync({**find_runs(self.runs_dir), **self.fixed}, self.log)


class BodySizeLimit:
    """Refuses bodies over `limit` bytes with 413 before the app parses them, declared length or not."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._too_large(send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.limit:
                return await self._too_large(send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Callable) -> None:
        response = JSONResponse(
            {"detail": f"request body over {self.limit} bytes; send fewer or shorter texts"}, status_code=413
        )
        await response({"type": "http"}, None, send)


class ErrorOut(BaseModel):
    detail: Any


def create_app(models: Any, settings: ServeSettings | None = None, *, run_info: dict[str, Any] | None = None) -> Any:
    """The FastAPI app for a loaded `Classifier` (with `run_info`, what /info reports about its run) or for
    several models (`ManyModels`)."""
    settings = settings or ServeSettings()
    if not isinstance(models, (OneModel, ManyModels)):
        models = OneModel(models, (run_info or {}).get("run", "model"), run_info or {})
    batcher = MicroBatcher(
        models.predict_many, wait_s=settings.batch_wait_ms / 1000, max_texts=settings.max_batch_texts
    )

    @asynccontextmanager
    async def lifespan(app: Any):
        await batcher.start()
        poll = asyncio.create_task(_poll(models, batcher, settings.runs_poll_s))
        yield
        poll.cancel()
        await batcher.stop()

    app = FastAPI(
        title="lora-sentiment",
        description="Text classification with LoRA-fine-tuned transformers: one model, or many on shared bases.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.models = models

    _add_model_routes(app, models, batcher, settings)

    @app.get("/health", summary="Liveness: the models are loaded")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(models.names), "batches": batcher.batches, "texts": batcher.texts}

    page = resources.files("lora_sentiment").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app


async def _chosen(models: Any, batcher: MicroBatcher, name: str | None) -> tuple[str, Any]:
    """The model a request names (the only one when it names none), or 400/404 naming those that exist."""
    if name is None:
        if not models.names:
            raise HTTPException(404, "no model is served yet: no finished run in --runs-dir")
        if len(models.names) > 1:
            served = ", ".join(models.names)
            raise HTTPException(400, f"{len(models.names)} models are served; name one in the model field: {served}")
        name = models.names[0]
    classifier = models.get(name)
    if classifier is None and models.runs_dir:
        await batcher.in_model_thread(models.refresh)  # a run that finished since the last look
        classifier = models.get(name)
    if classifier is None:
        raise HTTPException(404, f"no model named {name!r}; models: {', '.join(models.names) or 'none'}")
    return name, classifier


def _add_model_routes(app: Any, models: Any, batcher: MicroBatcher, settings: ServeSettings) -> None:
    PredictRequest = _request_model(settings)

    # The key check (and its security scheme in the OpenAPI schema) only exists when a key is set.
    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,  # each problem type answers with its own fields
        dependencies=[Depends(_key_check(settings.api_key))] if settings.api_key else [],
        responses=_documented_errors(settings),
        summary="Classify texts with one of the served models",
    )
    async def predict(request: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]
        name, classifier = await _chosen(models, batcher, request.model)
        scores = await batcher.submit(request.texts, name)
        space = classifier.space
        return PredictResponse(model=name, predictions=[PredictionOut.from_row(row, space) for row in scores])

    @app.get("/models", summary="The served models: labels, problem type, base model, training metrics")
    async def list_models() -> dict[str, Any]:
        served = [(name, models.get(name)) for name in list(models.names)]
        # A model dropped by a --runs-dir look in the models' thread meanwhile is left out, not an error.
        return {
            "models": [_summary(n, models.run_info(n), c) for n, c in served if c is not None and n in models.names]
        }

    @app.get(
        "/info",
        summary="A model's run: base model, labels, LoRA settings, metrics, limits [the only one]",
        responses={404: {"model": ErrorOut, "description": "No served model of that name"}},
    )
    async def get_info(model: str | None = None) -> dict[str, Any]:
        if model is None and len(models.names) != 1:
            return {"models": list(models.names), **_server_info(settings)}
        name, classifier = await _chosen(models, batcher, model)
        return {**models.run_info(name), "model": name, **_model_info(classifier), **_server_info(settings)}


async def _poll(models: Any, batcher: MicroBatcher, every_s: float) -> None:
    if not models.runs_dir:
        return
    while True:
        await asyncio.sleep(every_s)
        try:
            await batcher.in_model_thread(models.refresh)
        except Exception as exc:  # noqa: BLE001 - a folder that vanished or cannot be read: keep serving
            print(f"lora-sentiment: could not read --runs-dir: {exc}", flush=True)


def _request_model(settings: ServeSettings) -> type[BaseModel]:
    """The /predict body, with this server's limits in its schema."""
    Text = Annotated[str, StringConstraints(min_length=1, max_length=settings.max_chars)]
    examples = [{"texts": ["A wonderful, moving film.", "Dull and far too long."]}]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": examples}, protected_namespaces=())
        model: str | None = Field(None, description="which served model (GET /models) [the only one]")
        texts: list[Text] = Field(
            min_length=1,
            max_length=settings.max_texts,
            description=f"1 to {settings.max_texts} texts of at most {settings.max_chars} characters",
        )

    return PredictRequest


def _key_check(api_key: str) -> Callable[..., None]:
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def check_key(key: str | None = Security(key_header)) -> None:
        if not (key and secrets.compare_digest(key.encode(), api_key.encode())):
            raise HTTPException(status_code=401, detail="missing or wrong API key: send it in the X-API-Key header")

    return check_key


def _documented_errors(settings: ServeSettings) -> dict[int | str, dict[str, Any]]:
    errors: dict[int | str, dict[str, Any]] = {
        400: {
            "model": ErrorOut,
            "description": "A body that cannot be decoded, or no model named when several are served",
        },
        404: {"model": ErrorOut, "description": "No served model of that name (the detail lists those served)"},
        413: {"model": ErrorOut, "description": f"Body over {settings.max_body_bytes} bytes"},
        422: {"description": "Malformed JSON, or texts outside the limits"},
    }
    if settings.api_key:
        errors[401] = {"model": ErrorOut, "description": "Missing or wrong X-API-Key"}
    return errors


def _model_info(classifier: Any) -> dict[str, Any]:
    return {
        "label_names": list(classifier.label_names),
        "problem_type": classifier.space.problem_type,
        "thresholds": classifier.space.thresholds,
        "long_text": getattr(classifier, "long_text", "truncate"),
        "precision": classifier.precision,
        "device": getattr(classifier, "device", None) or str(next(classifier.model.parameters()).device),
    }


def _server_info(settings: ServeSettings) -> dict[str, Any]:
    limits = {
        "max_texts": settings.max_texts,
        "max_chars": settings.max_chars,
        "max_body_bytes": settings.max_body_bytes,
    }
    return {
        "limits": limits,
        "batching": {"wait_ms": settings.batch_wait_ms, "max_batch_texts": settings.max_batch_texts},
        "api_key_required": bool(settings.api_key),
    }


def _summary(name: str, info: dict[str, Any], classifier: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label_names": list(classifier.label_names),
        "problem_type": classifier.space.problem_type,
        "base_model": info.get("base_model"),
        "metrics": info.get("metrics", {}),
    }


def api_key_from_env(given: str | None) -> str | None:
    return given or os.environ.get(API_KEY_ENV) or None


def _version() -> str:
    try:
        return version("lora-sentiment")
    except PackageNotFoundError:
        return "0"


def serve(
    runs: str | Sequence[str] = (),
    *,
    runs_dir: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: "ServeSettings | None" = None,
    precision: str = "auto",
    long_text: str = "truncate",
    stride: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve one run or export (merged), or several runs and/or every run under `runs_dir` (shared bases)."""
    settings = settings or ServeSettings()
    app = create_app(
        open_models([runs] if isinstance(runs, str) else list(runs), runs_dir, settings, precision, long_text, stride),
        settings,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def open_models(
    specs: list[str], runs_dir: str | None, settings: ServeSettings, precision: str, long_text: str, stride: int | None
) -> Any:
    """What `serve` was given, loaded: one run or export on its own keeps the merged fast path."""
    from .multi import ClassifierSet
    from .run import parse_named_runs

    if not specs and not runs_dir:
        raise UserError("give a RUN to serve, several, or --runs-dir DIR")
    named = parse_named_runs(specs)
    if len(named) == 1 and not runs_dir:
        ((name, path),) = named.items()
        info = export_info(path) if is_export(path) else run_info(path)
        classifier = open_classifier(path, precision=precision, long_text=long_text, stride=stride)
        return OneModel(classifier, name, info)
    classifiers = ClassifierSet(
        precision=precision, long_text=long_text, stride=stride, mixing=settings.adapter_batching
    )
    for name, path in named.items():
        classifiers.add(name, path)
    log = lambda line: print(f"lora-sentiment: {line}", flush=True)  # noqa: E731
    models = ManyModels(classifiers, runs_dir, log=log, fixed=named)
    models.refresh()
    if runs_dir and not models.names:
        print(f"lora-sentiment: no finished run under {runs_dir} yet; serving as they appear", flush=True)
    return models
