"""`lora-sentiment serve RUN...`: saved runs over HTTP (POST /predict, a page at /, docs at /docs)."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import ServeSettings
from ..options import LoadOptions
from .flags import add_model_flags, build, from_args, given

HELP = "serve saved runs over HTTP: POST /predict, a page at /, docs at /docs"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help=HELP,
        description='Serve runs with FastAPI + uvicorn: POST /predict {"model": NAME, "texts": [...]} (model may be '
        "left out when one is served), GET /models, GET /info?model=NAME, GET /health, OpenAPI docs at /docs and a "
        "page at /. Concurrent requests share forward passes (micro-batching). Runs on one base model share its "
        "weights in memory; one run alone is served merged (fastest).",
    )
    parser.add_argument(
        "runs", nargs="*", metavar="RUN", help="run folders (or one export) to serve, each named after its folder; "
        "NAME=PATH names it"
    )  # fmt: skip
    parser.add_argument(
        "--runs-dir", help="also serve every finished run under this folder, as they appear, retrain or disappear"
    )
    add_model_flags(parser, ServeSettings)
    add_model_flags(parser, LoadOptions)


def check(args: argparse.Namespace) -> tuple[ServeSettings, LoadOptions]:
    from ..serving.app import api_key_from_env, check_serve

    values = given(args, ServeSettings)
    values["api_key"] = api_key_from_env(values.get("api_key"))
    settings: ServeSettings = build(ServeSettings, values)
    load = from_args(args, LoadOptions)
    check_serve(args.runs, args.runs_dir, settings, load)
    return settings, load


def run(args: argparse.Namespace, checked: tuple[ServeSettings, LoadOptions]) -> int:
    from ..serving.app import serve

    settings, load = checked
    serve(args.runs, runs_dir=args.runs_dir, settings=settings, options=load)
    return 0
