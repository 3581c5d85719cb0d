"""`lora-sentiment audit`: likely label errors, duplicates and leaks in the training data, found before training."""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

from ..config import TrainConfig, read_yaml
from ..options import AuditOptions
from .flags import add_model_flags, from_args
from .train import add_config_source_flags, config_in_folder

AUDIT_DIR = "audit/lora-sentiment"
HELP = "find likely label errors, duplicates and leaks in the training data"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "audit",
        help=HELP,
        description="Scores every training text with a model that did not see it (--folds K cross-fitting, each "
        "fold a real train run with the train flags given, averaged with the TF-IDF baseline for single-label data; "
        "the TF-IDF baseline alone with --scorer tfidf), flags the "
        "given labels those scores contradict (confident learning; residual outliers for numbers), and finds "
        "duplicates with conflicting labels and texts shared with the evaluation split. Writes issues.csv, "
        "summary.json and a noise-matrix plot into --output-dir (default here: "
        f"{AUDIT_DIR}); the same command again resumes, finished folds kept.",
    )
    add_config_source_flags(parser, "YAML file with any train option (flags win)")
    add_model_flags(parser, AuditOptions)
    add_model_flags(parser, TrainConfig, skip=("folds",))  # the audit's own --folds cross-fits


class AuditJob(NamedTuple):
    config: TrainConfig
    options: AuditOptions


def check(args: argparse.Namespace) -> AuditJob:
    from ..auditing.recipe import check_audit

    config = config_in_folder(args, read_yaml(args.config) if args.config else {}, AUDIT_DIR)
    config = config.model_copy(update={"folds": None})  # --folds here is the audit's (AuditOptions)
    options: AuditOptions = from_args(args, AuditOptions)
    check_audit(config, options)
    return AuditJob(config, options)


def run(args: argparse.Namespace, job: AuditJob) -> int:
    from ..auditing.recipe import audit

    audit(*job, log=lambda message: print(message, flush=True))
    return 0
