"""`lora-sentiment COMMAND`: one module per command, each an `add_parser` whose flags come from the command's
typed options (flags.py) and a `run` that calls the public API.

Every command is `check` then `run`: `check(args)` resolves and validates everything that needs neither the
data nor the model (options, folders, trackers, URLs, addresses, formats, extras) and returns the settings;
only then does `run(args, settings)` read data, load a model or write. A failure in `check` writes nothing.
Heavy libraries are imported inside the commands, so `--help` and bad flags answer at once. Adding a command:
a module here with HELP, add_parser, check and run, and its line in COMMANDS (docs/architecture.md)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import NoReturn

from ..errors import UserError, one_line

# command -> its module in this package. Order = --help's order.
COMMANDS = {
    "train": "train",
    "tune": "tune",
    "audit": "audit",
    "predict": "predict",
    "evaluate": "evaluate",
    "serve": "serve",
    "report": "report",
    "export": "export",
    "bench-serve": "bench_serve",
    "bench": "bench",
    "bench-engines": "bench_engines",
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line that names the command's --help, as our own errors are: not
    the usage block and then the error."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("required: RUN") and any(action.dest == "text" for action in self._actions):
            # `predict --text A B runs/x`: --text takes every value up to the next flag, the run included
            message += "; put it first (predict RUN --text TEXT...): written after --text, a run is read as a text"
        self.exit(2, f"lora-sentiment: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and each command's own."""
    parser = _Parser(
        prog="lora-sentiment",
        description="Fine-tune transformer encoders for text classification with LoRA (IMDB sentiment by default).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        import_module(f".{module}", __name__).add_parser(commands)
    return parser, commands.choices


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command's arguments, options and positionals in any order (`predict RUN --json "A text."` too):
    argparse's intermixed parsing, which it offers per command (not across subcommands)."""
    parser, commands = _parsers()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in commands:
        return parser.parse_args(argv)  # --help, or argparse's own error naming the commands
    args = commands[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args


class _OurLines(logging.Handler):
    """The package's log records as the CLI's own stderr lines (sys.stderr looked up at each line)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"lora-sentiment: {one_line(record.getMessage())}", file=sys.stderr, flush=True)


def _quiet_libraries() -> None:
    """Keep the terminal readable: progress bars and our own lines, not every library's load report."""
    import warnings

    ours = logging.getLogger("lora_sentiment")  # what the package logs (e.g. compiling a run once) as our own lines
    if not any(isinstance(h, _OurLines) for h in ours.handlers):
        ours.addHandler(_OurLines())
        ours.setLevel(logging.INFO)
        ours.propagate = False

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    from ..measure import seconds_since_process_start

    startup = seconds_since_process_start()
    args = parse(argv)
    args.startup_seconds = startup
    _quiet_libraries()
    command = import_module(f".{COMMANDS[args.command]}", __name__)
    try:
        settings = command.check(args)  # before any data is read or file written
        return command.run(args, settings)
    except UserError as exc:
        print(f"lora-sentiment: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lora-sentiment: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
