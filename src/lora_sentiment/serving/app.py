"""Serve stage: trained runs behind a small FastAPI app, with micro-batching (batcher.py), one or many models
(models.py) and a page at `/`.

No `from __future__ import annotations` here: FastAPI reads the request model from the endpoint's annotations,
and that model is built per app (its limits are settings), inside `create_app`."""

import asyncio
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from ..config import API_KEY_ENV, ServeSettings
from ..errors import UserError
from ..inference.base import Predictor
from ..options import LoadOptions
from ..problems.outputs import PredictionOut
from ..runs.run import run_info
from .batcher import MicroBatcher
from .models import ManyModels, OneModel, open_models
from .requests import abstention_of, explain_model, request_model, served_kinds, served_labels

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
    models: OneModel | ManyModels | Predictor, settings: ServeSettings | None = None, *,
    run_info: dict[str, Any] | None = None,
) -> Any:  # fmt: skip
    """The FastAPI app for a loaded Predictor (with `run_info`, what /info reports about its run) or for the models
    `open_models` gives."""
    settings = settings or ServeSettings()
    if not isinstance(models, (OneModel, ManyModels)):
        models = OneModel(models, (run_info or {}).get("run", "model"), run_info or {})
    batcher = MicroBatcher(
        models.predict_many, wait_s=settings.batch_wait_ms / 1000, max_texts=settings.max_batch_texts
    )

    @asynccontextmanager
    async def lifespan(app: Any):
        await batcher.start()
        await batcher.in_model_thread(models.warm)
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

    page = resources.files("lora_sentiment.serving").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app


async def _chosen(models: OneModel | ManyModels, batcher: MicroBatcher, name: str | None) -> tuple[str, Predictor]:
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


def _answering(settings: ServeSettings) -> dict[str, Any]:
    """What /predict and /explain share: the answer's model, each problem type's own fields only, the key check
    (and its security scheme in the OpenAPI schema, only when a key is set) and the documented errors."""
    return {"response_model": PredictResponse, "response_model_exclude_none": True,
            "dependencies": [Depends(_key_check(settings.api_key))] if settings.api_key else [],
            "responses": _documented_errors(settings)}  # fmt: skip


def _add_model_routes(app: Any, models: OneModel | ManyModels, batcher: MicroBatcher, settings: ServeSettings) -> None:
    PredictRequest = request_model(settings, served_kinds(models))

    @app.post("/predict", **_answering(settings), summary="Classify texts with one of the served models")
    async def predict(request: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]
        name, classifier = await _chosen(models, batcher, request.model)
        rule = abstention_of(request, classifier)
        scores = await batcher.submit(request.texts, name)
        space = classifier.space
        return PredictResponse(model=name, predictions=[PredictionOut.from_row(row, space, rule) for row in scores])

    _add_explain_route(app, models, batcher, settings, PredictRequest)

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
        return {**models.run_info(name), "model": name, **classifier.info(), **_server_info(settings)}


async def _poll(models: OneModel | ManyModels, batcher: MicroBatcher, every_s: float) -> None:
    if not models.runs_dir:
        return
    while True:
        await asyncio.sleep(every_s)
        try:
            await batcher.in_model_thread(models.refresh)
        except Exception as exc:  # noqa: BLE001 - a folder that vanished or cannot be read: keep serving
            print(f"lora-sentiment: could not read --runs-dir: {exc}", flush=True)


def _add_explain_route(
    app: Any, models: OneModel | ManyModels, batcher: MicroBatcher, settings: ServeSettings,
    predict_request: type[BaseModel],
) -> None:  # fmt: skip
    """POST /explain: /predict's answers with the words that drove each one (inference/explain.py)."""
    ExplainRequest = explain_model(predict_request, served_labels(models))

    summary = "Classify texts and say which words pushed each answer up or down (Captum)"

    @app.post("/explain", **_answering(settings), summary=summary)
    async def explain(request: ExplainRequest) -> PredictResponse:  # type: ignore[valid-type]
        name, classifier = await _chosen(models, batcher, request.model)
        rule = abstention_of(request, classifier)

        def work() -> list[Any]:
            from ..inference.explain import check_explainable

            explainer = models.explainer(name)
            try:
                check_explainable(explainer, request.method, request.label)
            except UserError as exc:
                raise HTTPException(400, str(exc).replace("--explain-label", "label")) from None
            return explainer.explain(request.texts, request.method, request.label, abstention=rule)

        answers = await batcher.in_model_thread(work)
        return PredictResponse(
            model=name, predictions=[PredictionOut(**a.model_dump(exclude={"text"})) for a in answers]
        )


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


def _summary(name: str, info: dict[str, Any], classifier: Predictor) -> dict[str, Any]:
    return {
        "name": name,
        "label_names": list(classifier.space.names),
        "problem_type": classifier.space.problem_type,
        "base_model": info.get("base_model"),
        "metrics": info.get("metrics", {}),
        "headline": info.get("headline", []),
    }


def api_key_from_env(given: str | None) -> str | None:
    return given or os.environ.get(API_KEY_ENV) or None


def _version() -> str:
    try:
        return version("lora-sentiment")
    except PackageNotFoundError:
        return "0"


def check_serve(
    runs: str | Sequence[str], runs_dir: str | None, settings: ServeSettings, options: LoadOptions | None = None
) -> None:
    """`serve`'s settings, before any model loads: something to serve, every run named opens, the folder to
    watch is one, and the address can be listened on (a port in use is found now, not after the models load)."""
    from ..opening import check_openable
    from ..runs.run import parse_named_runs

    specs = [runs] if isinstance(runs, str) else list(runs)
    if not specs and not runs_dir:
        raise UserError("give a RUN to serve, several, or --runs-dir DIR")
    for path in parse_named_runs(specs).values():
        check_openable(path, options)
    if runs_dir and not Path(runs_dir).expanduser().is_dir():
        raise UserError(f"--runs-dir {runs_dir} is not a folder; create it, or give the folder that holds the runs")
    _check_address(settings.host, settings.port)


def _check_address(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(
            f"--host {host!r} is not an address of this machine ({exc}); e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closing socket is no clash
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port, or stop what uses it"
            ) from None


def serve(
    runs: str | Sequence[str] = (), *, runs_dir: str | None = None, settings: ServeSettings | None = None,
    options: LoadOptions | None = None, **given: Any,
) -> None:  # fmt: skip
    """Serve one run or export (merged), or several runs and/or every run under `runs_dir` (shared bases) at
    `settings.host`:`settings.port`. `given`: ServeSettings' fields (host, port, limits...), as keywords."""
    settings = settings or ServeSettings(**given)
    check_serve(runs, runs_dir, settings)
    specs = [runs] if isinstance(runs, str) else list(runs)
    app = create_app(open_models(specs, runs_dir, settings, options or LoadOptions()), settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
