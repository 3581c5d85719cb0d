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
    parser.add_argument("out_dir", nargs="?", help="folder for the exported model")
    # train, tune and audit name their folder --output-dir: a user's habit, taken here too
    parser.add_argument("--output-dir", dest="output_dir", help="the same as OUT_DIR")
    add_model_flags(parser, ExportOptions)


def check(args: argparse.Namespace) -> ExportOptions:
    from ..errors import UserError
    from ..export.writing import check_export_settings

    if args.out_dir is not None and args.output_dir is not None and args.out_dir != args.output_dir:
        raise UserError(f"export got two folders, {args.out_dir} and --output-dir {args.output_dir}; give one")
    args.out_dir = args.out_dir or args.output_dir
    if args.out_dir is None:
        raise UserError("export needs the folder to write: lora-sentiment export RUN OUT_DIR (or --output-dir OUT_DIR)")
    options: ExportOptions = from_args(args, ExportOptions)
    check_export_settings(args.run_dir, args.out_dir, options)
    return options


def run(args: argparse.Namespace, options: ExportOptions) -> int:
    from ..export.writing import export_run

    export_run(args.run_dir, args.out_dir, options, log=lambda m: print(m, flush=True))
    return 0
