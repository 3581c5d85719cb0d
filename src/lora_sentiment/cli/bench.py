"""`lora-sentiment bench`: the tutorial's recipe against this project's defaults, side by side on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..bench.options import BenchOptions
from .flags import add_model_flags, check_report_file, from_args

HELP = "time the tutorial's recipe against this project's defaults, side by side"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        help=HELP,
        description="Train and predict with the tutorial's recipe (fp32, batch 4) and with this project's defaults "
        "on the same model, data and max length, one after the other; report throughput, peak RSS, accuracy, "
        "ratios and MFU against the matmul peak measured in the same run.",
    )
    add_model_flags(parser, BenchOptions)


def check(args: argparse.Namespace) -> BenchOptions:
    from ..bench.speed import check_bench

    options: BenchOptions = from_args(args, BenchOptions)
    check_bench(options)
    check_report_file(options.output)
    return options


def run(args: argparse.Namespace, options: BenchOptions) -> int:
    from ..bench.speed import format_report, run_bench

    report = run_bench(options, log=lambda message: print(message, flush=True))
    print(format_report(report))
    if options.output:
        Path(options.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0
