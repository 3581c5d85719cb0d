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


def check(args: argparse.Namespace) -> tuple[ServeBenchOptions, list[str]]:
    from ..runs.run import Run

    options: ServeBenchOptions = from_args(args, ServeBenchOptions)
    trained = [Run.open(run).config.text_column for run in args.runs]  # a clear error before any server starts
    if not Path(options.data).is_file():
        raise UserError(f"--data {options.data} not found: give a file whose text column supplies the requests")
    check_report_file(options.output)
    return options, _requests(options.data, options.text_column, trained)


def _requests(data: str, given: str | None, trained: list[str]) -> list[str]:
    """The file's texts: from --text-column, else the runs' own where the file has it, else `text` (a .txt file:
    its lines)."""
    from ..data.tables import INPUT_FORMATS, checked_chunks, column_to_read, missing_column_fix, resolve_format

    fmt = resolve_format(data, None, INPUT_FORMATS, "--data", "txt")
    texts: list[str] = []
    for chunk in checked_chunks(data, fmt, 4096, format_fix="or give --data the extension of its format"):
        columns = list(chunk.columns)
        column = "text" if fmt == "txt" else column_to_read(given, trained, "text", columns, "--text-column", data)
        if column not in columns:
            raise UserError(f"no column {column!r} in {data}; columns are: {', '.join(map(str, columns))} "
                            f"({missing_column_fix(columns, '--text-column')})")  # fmt: skip
        texts += [t for t in chunk[column].tolist() if isinstance(t, str) and t.strip()]
    if not texts:
        raise UserError(f"no texts in {data} (it needs a text column)")
    return texts


def run(args: argparse.Namespace, settings: tuple[ServeBenchOptions, list[str]]) -> int:
    from ..bench.serve_load import compare_batching, compare_models, format_results

    options, texts = settings
    log = lambda m: print(m, flush=True)  # noqa: E731
    if len(args.runs) == 1:
        results = compare_batching(args.runs[0], texts, options, log)
    else:
        results = compare_models(args.runs, texts, options, log)
    print(format_results(results))
    if options.output:
        Path(options.output).write_text(json.dumps([r.as_dict() for r in results], indent=2), encoding="utf-8")
    return 0
