"""`lora-sentiment report RUN`: redraw a run's plots and print a one-screen summary."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runs.run import Run

HELP = "redraw a run's plots and print a one-screen summary"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("report", help=HELP)
    parser.add_argument("run_dir", help="the --output-dir of a training run")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="only print the summary")


def check(args: argparse.Namespace) -> Run:
    from ..runs.run import Run

    return Run.open(args.run_dir)


def run(args: argparse.Namespace, run: Run) -> int:
    from ..runs.summary import summary

    print(summary(run.config, run.space, run.metrics))
    if args.plots:
        paths = run.draw_plots()
        print("Plots: " + ", ".join(str(p) for p in paths))
    return 0
