"""`lora-sentiment train`: fine-tune with LoRA and save the run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import PRESETS, TrainConfig, build_config
from .flags import add_model_flags, given

HELP = "fine-tune a model with LoRA and save the run"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "train", help=HELP, description="Fine-tune with LoRA. Flags override --config, which overrides --preset."
    )
    add_config_source_flags(parser, "YAML file with any of the options below (flags win)")
    add_model_flags(parser, TrainConfig)


def add_config_source_flags(parser: argparse.ArgumentParser, config_help: str) -> None:
    parser.add_argument("--config", help=config_help)
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="a named recipe; imdb-truncated reproduces the tutorial"
    )


def config_in_folder(args: argparse.Namespace, values: dict[str, Any], default_dir: str) -> TrainConfig:
    """train's settings from --config's `values`, --preset and the flags, for a command whose --output-dir is a
    folder of its own (tune's study, audit's folds) with `default_dir` as its default, not train's run folder."""
    preset = args.preset or values.pop("preset", None)
    overrides = given(args, TrainConfig)
    overrides.setdefault("output_dir", values.pop("output_dir", default_dir))
    return build_config({**values, **overrides}, preset=preset)


def check(args: argparse.Namespace) -> TrainConfig:
    from ..training.checks import check_train

    config = build_config(given(args, TrainConfig), preset=args.preset, config_file=args.config)
    check_train(config)
    return config


def run(args: argparse.Namespace, config: TrainConfig) -> int:
    from ..measure import Stages, seconds_line

    stages = Stages()
    with stages.timing("imports"):  # torch, transformers, peft, datasets: a fixed cost of every training run
        from ..modeling.distributed import is_main_process
        from ..training.recipe import train

    result = train(config, log=lambda message: print(message, flush=True))
    if is_main_process():  # one run, one voice, as train's own lines
        print(seconds_line({"start-up": args.startup_seconds, **stages.seconds, **result.seconds}), file=sys.stderr)
    return 0
