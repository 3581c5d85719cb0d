"""`lora-sentiment export RUN OUT_DIR --format ENGINE`: the run merged into a standalone model for an engine."""

from __future__ import annotations

import argparse
from typing import Any

from ..options import ExportOptions
from .flags import add_model_flags, from_args

HELP = "merge the LoRA weights into the base model and save it for an engine (transformers, ONNX, OpenVINO)"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "export",
        help=HELP,
        description="Fold the adapter into the base model and save model + tokenizer to OUT_DIR: loadable with "
        "transformers.pipeline('text-classification', model=OUT_DIR) without peft (--format transformers), or by "
        "ONNX Runtime / OpenVINO, which predict, evaluate and serve open without torch.",
    )
    parser.add_argument("run_dir", help="the --output-dir of a training run")
    parser.add_argument("out_dir", help="folder for the exported model")
    add_model_flags(parser, ExportOptions)


def check(args: argparse.Namespace) -> ExportOptions:
    from ..export.writing import check_export_settings

    options: ExportOptions = from_args(args, ExportOptions)
    check_export_settings(args.run_dir, args.out_dir, options)
    return options


def run(args: argparse.Namespace, options: ExportOptions) -> int:
    from ..export.writing import export_run

    export_run(args.run_dir, args.out_dir, options, log=lambda m: print(m, flush=True))
    return 0
