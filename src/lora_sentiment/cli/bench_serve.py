"""`lora-sentiment bench-serve RUN... --data FILE`: the server under a bounded loopback load."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..bench.options import ServeBenchOptions
from ..errors import UserError
from .flags import add_model_flags, check_report_file, from_args

HELP = "measure the server under a bounded loopback load, without and with micro-batching"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench-serve",
        help=HELP,
        description="Start `serve RUN_DIR` twice on loopback (--batch-wait-ms 0, then the window given) and send the "
        "same load of real texts to each: a fixed number of requests from concurrent clients. Reports throughput, "
        "p50/p99 latency, server errors and forward passes.",
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="a training run; with several, the first alone (merged) against all "
        "in one server (shared base), under each --mix, with mixed and with per-run batches",
    )  # fmt: skip
    add_model_flags(parser, ServeBenchOptions)


def check(args: argparse.Namespace) -> ServeBenchOptions:
    from ..data.tables import INPUT_FORMATS, resolve_format
    from ..runs.run import Run

    options: ServeBenchOptions = from_args(args, ServeBenchOptions)
    for run in args.runs:
        Run.open(run)  # a clear error before any server starts
    if not Path(options.data).is_file():
        raise UserError(f"--data {options.data} not found: give a file whose text column supplies the requests")
    resolve_format(options.data, None, INPUT_FORMATS, "--data", "txt")
    check_report_file(options.output)
    return options


def run(args: argparse.Namespace, options: ServeBenchOptions) -> int:
    from ..bench.serve_load import compare_batching, compare_models, format_results
    from ..data.tables import INPUT_FORMATS, read_chunks, resolve_format

    fmt = resolve_format(options.data, None, INPUT_FORMATS, "--data", "txt")
    texts = [t for chunk in read_chunks(options.data, fmt, 4096) for t in chunk["text"].tolist()
             if isinstance(t, str) and t.strip()]  # fmt: skip
    if not texts:
        raise UserError(f"no texts in {options.data} (it needs a text column)")
    log = lambda m: print(m, flush=True)  # noqa: E731
    if len(args.runs) == 1:
        results = compare_batching(args.runs[0], texts, options, log)
    else:
        results = compare_models(args.runs, texts, options, log)
    print(format_results(results))
    if options.output:
        Path(options.output).write_text(json.dumps([r.as_dict() for r in results], indent=2), encoding="utf-8")
    return 0
