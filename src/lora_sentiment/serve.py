"""Serve stage: a trained run behind a small FastAPI app, with micro-batching and a page at `/`.

Requests that arrive within a short window (or while the model is busy) are merged into one forward pass:
per-text cost falls with batch size, so concurrent clients get more throughput than one-at-a-time.

No `from __future__ import annotations` here: FastAPI reads the request model from the endpoint's annotations,
and that model is built per app (its limits are settings), inside `create_app`."""

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
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
from .run import Run

__all__ = ["API_KEY_ENV", "MicroBatcher", "ServeSettings", "api_key_from_env", "create_app", "run_info", "serve"]


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class MicroBatcher:
    """Queues requests and runs them through `predict` together: one forward pass for every request that
    arrived within `wait_s` of the first, up to `max_texts` texts. Runs on the server's event loop; the model
    itself runs in one worker thread so the loop keeps accepting requests meanwhile."""

    def __init__(self, predict: Callable[[list[str]], np.ndarray], *, wait_s: float, max_texts: int):
        self.predict = predict
        self.wait_s = wait_s
        self.max_texts = max_texts
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future]] | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.batches = 0
        self.texts = 0
        self._task: asyncio.Task | None = None
        self._held: tuple[list[str], asyncio.Future] | None = None  # a request that did not fit the last batch

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

    async def submit(self, texts: list[str]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _collect(self) -> list[tuple[list[str], asyncio.Future]]:
        held, self._held = self._held, None
        items = [held if held is not None else await self.queue.get()]
        if self.wait_s <= 0:
            return items  # no micro-batching: every request is its own forward pass
        count = len(items[0][0])
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
            if count + len(item[0]) > self.max_texts:
                self._held = item  # first into the next batch, so it keeps its place
                break
            items.append(item)
            count += len(item[0])
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            items = [(texts, future) for texts, future in items if not future.done()]  # clients that left
            if not items:
                continue
            texts = [text for request_texts, _ in items for text in request_texts]
            try:
                probabilities = await loop.run_in_executor(self.executor, self.predict, texts)
            except Exception as exc:
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(texts)
            start = 0
            for request_texts, future in items:
                if not future.done():
                    future.set_result(probabilities[start : start + len(request_texts)])
                start += len(request_texts)


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


def create_app(
    classifier: Any, settings: ServeSettings | None = None, *, run_info: dict[str, Any] | None = None
) -> Any:
    """The FastAPI app for a loaded `Classifier`. `run_info` is what /info reports about the run."""
    settings = settings or ServeSettings()
    space = classifier.space
    batcher = MicroBatcher(
        classifier.predict_scores, wait_s=settings.batch_wait_ms / 1000, max_texts=settings.max_batch_texts
    )
    PredictRequest = _request_model(settings)

    @asynccontextmanager
    async def lifespan(app: Any):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="lora-sentiment",
        description="Text classification with a LoRA-fine-tuned transformer.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.batcher = batcher

    # The key check (and its security scheme in the OpenAPI schema) only exists when a key is set.
    @app.post(
        "/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,  # each problem type answers with its own fields
        dependencies=[Depends(_key_check(settings.api_key))] if settings.api_key else [],
        responses=_documented_errors(settings),
        summary="Classify texts",
    )
    async def predict(request: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]
        probabilities = await batcher.submit(request.texts)
        return PredictResponse(predictions=[PredictionOut.from_row(row, space) for row in probabilities])

    @app.get("/health", summary="Liveness: the model is loaded")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "batches": batcher.batches, "texts": batcher.texts}

    info = _info(classifier, settings, run_info or {})

    @app.get("/info", summary="The run: base model, labels, LoRA settings, training metrics, limits")
    async def get_info() -> dict[str, Any]:
        return info

    page = resources.files("lora_sentiment").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app


def _request_model(settings: ServeSettings) -> type[BaseModel]:
    """The /predict body, with this server's limits in its schema."""
    Text = Annotated[str, StringConstraints(min_length=1, max_length=settings.max_chars)]
    examples = [{"texts": ["A wonderful, moving film.", "Dull and far too long."]}]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": examples})
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
        400: {"model": ErrorOut, "description": "A body that cannot be decoded"},
        413: {"model": ErrorOut, "description": f"Body over {settings.max_body_bytes} bytes"},
        422: {"description": "Malformed JSON, or texts outside the limits"},
    }
    if settings.api_key:
        errors[401] = {"model": ErrorOut, "description": "Missing or wrong X-API-Key"}
    return errors


def _info(classifier: Any, settings: ServeSettings, run_info: dict[str, Any]) -> dict[str, Any]:
    limits = {
        "max_texts": settings.max_texts,
        "max_chars": settings.max_chars,
        "max_body_bytes": settings.max_body_bytes,
    }
    return {
        **run_info,
        "label_names": list(classifier.label_names),
        "problem_type": classifier.space.problem_type,
        "thresholds": classifier.space.thresholds,
        "long_text": getattr(classifier, "long_text", "truncate"),
        "precision": classifier.precision,
        "device": getattr(classifier, "device", None) or str(next(classifier.model.parameters()).device),
        "limits": limits,
        "batching": {"wait_ms": settings.batch_wait_ms, "max_batch_texts": settings.max_batch_texts},
        "api_key_required": bool(settings.api_key),
    }


def run_info(run_dir: Any) -> dict[str, Any]:
    """What /info tells about a run: its recipe and its final evaluation."""
    run = Run.open(run_dir)
    config = run.config
    try:
        final = run.metrics.final.model_dump(exclude_unset=True, exclude={"confusion_matrix"})
    except UserError:  # a run without its metrics still serves; /info just has none to show
        final = {}
    return {
        "run": run.path.name,
        "base_model": config.model,
        "max_length": config.max_length,
        "truncation": config.truncation,
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "targets": config.lora_targets,
        },
        "metrics": final,
        "examples": config.examples,
    }


def api_key_from_env(given: str | None) -> str | None:
    return given or os.environ.get(API_KEY_ENV) or None


def _version() -> str:
    try:
        return version("lora-sentiment")
    except PackageNotFoundError:
        return "0"


def serve(
    run_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: "ServeSettings | None" = None,
    precision: str = "auto",
    long_text: str = "truncate",
    stride: int | None = None,
    log_level: str = "info",
) -> None:
    info = export_info(run_dir) if is_export(run_dir) else run_info(run_dir)
    classifier = open_classifier(run_dir, precision=precision, long_text=long_text, stride=stride)
    app = create_app(classifier, settings, run_info=info)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
