"""`lora-sentiment tune`: an Optuna search over training settings; each trial is a real train run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, NamedTuple

from ..config import TrainConfig, read_yaml
from ..errors import UserError
from ..options import TuneOptions
from .flags import add_model_flags, from_args
from .train import add_config_source_flags, config_in_folder

if TYPE_CHECKING:
    from ..training.search_space import Dimension

TUNE_DIR = "tune/lora-sentiment"
HELP = "search training settings with Optuna; each trial is a real train run"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tune",
        help=HELP,
        description="An Optuna study over the --search space around the train settings given (every train flag "
        "works). Bad trials are pruned after an epoch; the study lives in --output-dir/study.db (or --storage), so "
        "the same command again continues it, and several processes can share it. Writes best_config.yaml, "
        "leaderboard.csv, optimization_history.png and param_importances.png into --output-dir (default here: "
        f"{TUNE_DIR}).",
    )
    add_config_source_flags(parser, "YAML file with any train option, and a search: block of NAME: SPEC")
    add_model_flags(parser, TuneOptions)
    add_model_flags(parser, TrainConfig, skip=("folds",))  # trials are compared on the evaluation split


class TuneJob(NamedTuple):
    config: TrainConfig
    search: list[Dimension]
    options: TuneOptions


def check(args: argparse.Namespace) -> TuneJob:
    from ..training.checks import check_tune
    from ..training.search_space import DEFAULT_SEARCH, parse_search

    values = read_yaml(args.config) if args.config else {}
    search_block = values.pop("search", None)
    if search_block is not None and not isinstance(search_block, dict):
        raise UserError(f"the search: block of {args.config} must map settings to specs, e.g. lora_r: 4,8,16")
    config = config_in_folder(args, values, TUNE_DIR)
    options: TuneOptions = from_args(args, TuneOptions)
    search = parse_search(options.search or search_block or DEFAULT_SEARCH)
    check_tune(config, options)
    return TuneJob(config, search, options)


def run(args: argparse.Namespace, job: TuneJob) -> int:
    from ..training.tuning import tune

    tune(*job, log=lambda message: print(message, flush=True))
    return 0
