"""`lora-sentiment predict RUN... --text TEXT... | --input FILE`: classify texts, or every row of a file, with one
run or export, or with several side by side (runs on one base model share its weights; an export predicts on its
own beside them)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..options import ExplainOptions, FileOptions, LoadOptions, RunnerOptions
from .flags import add_model_flags, from_args

HELP = "classify texts, or a whole file, with saved runs"
DEPRECATED_ENGINES = ("local", "ray")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "predict",
        help=HELP,
        description="Classify the --text given, or every row of --input (CSV/TSV/JSON/JSONL/Parquet, or .txt with one "
        "text per line) into --output (CSV/TSV/JSONL), in chunks, so files larger than memory work. '-' is "
        "stdin/stdout. Several runs add one set of prediction columns each, NAME.predicted_label...",
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="the --output-dir of a training run, or an export; several runs or "
        "exports (NAME=PATH names one) predict side by side. (Deprecated: `predict RUN TEXT...` without --text.)",
    )  # fmt: skip
    # extend: `--text A --text B` predicts both (store kept only the last, silently)
    parser.add_argument("--text", nargs="+", action="extend", metavar="TEXT", help="texts to classify")
    parser.add_argument("--input", help="file to classify: .csv .tsv .json .jsonl .parquet .txt, or - for stdin")
    parser.add_argument("--output", help="where predictions go: .csv .tsv .jsonl .parquet, or - for stdout [-]")
    add_model_flags(parser, FileOptions)
    add_model_flags(parser, RunnerOptions)
    add_model_flags(parser, LoadOptions)
    add_model_flags(parser, ExplainOptions)
    # 0.2's `--engine local|ray` (now --runner) shares the flag with the engine that runs the model.
    engine_flag = next(a for a in parser._actions if a.dest == "engine")
    engine_flag.choices = [*engine_flag.choices, *DEPRECATED_ENGINES]
    engine_flag.metavar = "{" + ",".join(LoadOptions.model_fields["engine"].annotation.__args__) + "}"
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table (with --text)")


@dataclass
class PredictJob:
    """What `predict` was asked, checked: the runs (by name), the texts or the file options, where it runs."""

    runs: dict[str, str]
    texts: list[str]
    load: LoadOptions
    file: FileOptions | None = None  # with --input
    where: RunnerOptions | None = None
    explain: ExplainOptions | None = None  # with --explain


def check(args: argparse.Namespace) -> PredictJob:
    from ..opening import check_openable

    runs, texts = _runs_and_texts(args)
    if args.output and not args.input:
        raise UserError("--output needs --input; texts given with --text are printed")
    if texts and args.input:
        raise UserError("give --text or --input, not both")
    if not texts and not args.input:
        raise UserError("give texts with --text TEXT... or a file with --input FILE")
    from ..data.encoding import is_blank

    blank = [number for number, text in enumerate(texts, 1) if is_blank(text)]
    if blank:  # an empty shell variable, most likely; a file's blank rows are skipped and counted instead
        raise UserError(f"--text: text {blank[0]} is empty; give each text non-blank (serve refuses them too)")
    if args.engine in DEPRECATED_ENGINES:
        print("lora-sentiment: note: --engine local|ray is deprecated; use --runner", file=sys.stderr)
        args.runner, args.engine = args.runner or args.engine, None
    job = PredictJob(runs, texts, from_args(args, LoadOptions))
    _check_explain(args, job)
    if args.input:
        _check_file_job(args, job)
    for path in runs.values():
        check_openable(path, job.load)  # a damaged run or export fails here, once, not in every worker
    return job


def _check_explain(args: argparse.Namespace, job: PredictJob) -> None:
    """--explain: one run, read by torch (the gradients and the word pieces are the run's model's own)."""
    from ..runs.run import is_export

    explain = from_args(args, ExplainOptions)
    if not explain.explain:
        if explain.explain_label is not None or args.explain_method is not None:
            raise UserError("--explain-method and --explain-label go with --explain")
        return
    if len(job.runs) > 1 or any(is_export(p) for p in job.runs.values()):
        raise UserError("--explain takes one run folder (explanations need its torch model, not an export or a set)")
    if job.load.engine not in ("auto", "torch"):
        raise UserError(f"--explain runs the run's torch model: drop --engine {job.load.engine} (or give torch)")
    from ..inference.explain import captum, check_explain_label
    from ..opening import records

    captum()
    check_explain_label(records(next(iter(job.runs.values())))[1], explain.explain_label)
    # fp32 unless asked otherwise: integrated gradients interpolate the embeddings, which bf16 would coarsen.
    precision = "fp32" if job.load.precision == "auto" else job.load.precision
    job.load = job.load.model_copy(update={"engine": "torch", "precision": precision})
    job.explain = explain


def _check_file_job(args: argparse.Namespace, job: PredictJob) -> None:
    job.file, job.where = from_args(args, FileOptions), from_args(args, RunnerOptions)
    if job.where.runner == "ray":
        from ..batch.ray_data import check_ray_job

        if not args.output:
            raise UserError("--runner ray writes a folder of files: give --output FOLDER")
        if len(job.runs) > 1:
            raise UserError("--runner ray takes one run; predict several runs over one file with --runner local")
        check_ray_job(args.output, job.file, job.where.ray_address)
        return
    if job.where.ray_address:
        raise UserError("--ray-address needs --runner ray")
    from ..batch.files import check_file_job

    check_file_job(args.input, args.output or "-", job.file)


def run(args: argparse.Namespace, job: PredictJob) -> int:
    if not args.input:
        return _predict_texts(args, job)
    if job.where and job.where.runner == "ray":
        return _predict_on_ray(args, job)
    return _predict_file(args, job)


def _runs_and_texts(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """With --text or --input every positional is a run; without, the 0.2 form: one RUN, then its texts."""
    from ..runs.run import parse_named_runs

    if args.text is None and args.input is None and len(args.runs) > 1:
        print("lora-sentiment: note: `predict RUN TEXT...` is deprecated; use `predict RUN --text TEXT...`",
              file=sys.stderr)  # fmt: skip
        return {Path(args.runs[0]).name: args.runs[0]}, args.runs[1:]
    runs = parse_named_runs(args.runs)
    missing = [str(p) for p in runs.values() if not Path(p).exists()]
    if missing and len(runs) > 1:
        raise UserError(
            f"{missing[0]!r} is not a run folder: with --text or --input every positional names a run; give texts "
            "with --text, or a file with --input, not both"
        )
    return {name: str(path) for name, path in runs.items()}, args.text or []


def _predict_texts(args: argparse.Namespace, job: PredictJob) -> int:
    from ..inference.base import PredictorSet
    from ..opening import open_predictor
    from ..problems.outputs import format_table

    runs, texts = job.runs, job.texts
    target = next(iter(runs.values())) if len(runs) == 1 else runs
    model = open_predictor(target, job.load, expected_texts=len(texts))
    members = [(name, model[name]) for name in model.names] if isinstance(model, PredictorSet) else [(None, model)]
    explain = job.explain
    for name, predictor in members:
        if explain is not None:
            predictions = predictor.explain(texts, explain.explain_method, explain.explain_label)
        else:
            predictions = predictor.predict(texts, batch_size=args.batch_size)
        if args.json:  # the text as typed (no \u escapes), as --output .jsonl writes it
            for p in predictions:
                row = {**({"model": name} if name else {}), "text": p.text,
                       **p.model_dump(exclude={"text"}, exclude_none=True)}  # fmt: skip
                print(json.dumps(row, ensure_ascii=False))
        else:
            print(format_table(predictions, title=name))
            if explain is not None:
                from ..inference.explain import strongest_words

                for p in predictions:
                    print(f"  why {p.text[:40]!r}: {strongest_words(p.explanation)}")
    return 0


def _predict_file(args: argparse.Namespace, job: PredictJob) -> int:
    from ..batch.files import predict_file
    from ..measure import seconds_line

    runs = job.runs
    target = next(iter(runs.values())) if len(runs) == 1 else runs
    summary = predict_file(target, args.input, args.output or "-", job.file, job.load, job.explain)
    skipped = f"; {summary.skipped_empty} rows with no text left without a prediction" if summary.skipped_empty else ""
    print(f"Predicted {summary.predicted} of {summary.rows} rows{skipped}.", file=sys.stderr)
    print(seconds_line({"start-up": args.startup_seconds, **summary.stages.seconds}), file=sys.stderr)
    return 0


def _predict_on_ray(args: argparse.Namespace, job: PredictJob) -> int:
    from ..batch.ray_data import predict_on_ray

    assert job.where is not None
    (path,) = job.runs.values()
    summary = predict_on_ray(str(Path(path).absolute()), args.input, args.output, job.file, job.load,
                             ray_address=job.where.ray_address, explain=job.explain)  # fmt: skip
    print(
        f"Predicted {summary.rows} rows of {summary.files_in} files with {summary.workers} Ray workers into "
        f"{summary.output} ({summary.files_out} files; input order: sort by input_file, input_row).",
        file=sys.stderr,
    )
    return 0
