"""`lora-sentiment bench-engines RUN --data FILE`: one run's prediction through every engine, side by side."""

from __future__ import annotations

import argparse
from typing import Any

from ..bench.options import EngineBenchOptions
from .flags import add_model_flags, check_report_file, from_args

HELP = "time one run's prediction through every engine: the tutorial's way, torch, ONNX, OpenVINO"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench-engines",
        help=HELP,
        description="Export RUN_DIR to every installed runtime (ONNX Runtime fp32/int8, OpenVINO bf16/int8) and "
        "predict the same labelled reviews with each and with the tutorial's way (fp32 PEFT, 4 at a time): the "
        "steady-state loop and the whole `predict --input` command, each in a fresh process; reports reviews/s, "
        "peak RSS, accuracy and the ratio to the tutorial's way.",
    )
    parser.add_argument("run_dir", help="the --output-dir of a single-label training run")
    add_model_flags(parser, EngineBenchOptions)


def check(args: argparse.Namespace) -> EngineBenchOptions:
    from ..bench.engines import check_data, check_single_label
    from ..runs.run import Run

    options: EngineBenchOptions = from_args(args, EngineBenchOptions)
    check_single_label(Run.open(args.run_dir).space.problem_type)
    check_data(options.data)
    check_report_file(options.output)
    return options


def run(args: argparse.Namespace, options: EngineBenchOptions) -> int:
    from ..bench.engines import format_engine_report, run_engine_bench, save_report

    report = run_engine_bench(args.run_dir, options, log=lambda m: print(m, flush=True))
    print(format_engine_report(report))
    if options.output:
        save_report(report, options.output)
    return 0
