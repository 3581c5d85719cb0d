"""Batch prediction on files: read a table in chunks, classify, and write each chunk as it is done.

Memory stays bounded by the chunk size, whatever the file size; `-` reads stdin / writes stdout. Written to a
temporary file beside the output and renamed at the end, so a failed run never leaves half a predictions file."""

from __future__ import annotations

import itertools
import os
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import ValidationError
from tqdm.auto import tqdm

from ..atomic import staged_file
from ..data.quiet import bars_shown
from ..data.tables import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    check_input,
    checked_chunks,
    checked_output,
    claimed_output,
    column_to_read,
    resolve_format,
    total_rows,
    write_chunk,
)
from ..errors import UserError, format_validation_error
from ..export.compiled import count_predicted
from ..measure import Stages
from ..opening import job_target, open_predictor, records
from ..options import ExplainOptions, FileOptions, LoadOptions
from .columns import ChunkJob, check_columns
from .workers import InProcess, Target, WorkerPool

if TYPE_CHECKING:
    from ..inference.base import Predictor, PredictorSet


@dataclass
class BatchSummary:
    rows: int = 0
    predicted: int = 0
    skipped_empty: int = 0
    # Wall seconds per stage in this process: loading the model, reading input, predicting (or waiting for
    # the workers), writing output.
    stages: Stages = field(default_factory=lambda: Stages("load", "read", "predict", "write"))

    def timing(self, stage: str) -> AbstractContextManager[None]:
        return self.stages.timing(stage)


def predict_file(
    model: Predictor | PredictorSet | Target, input_path: str, output_path: str, options: FileOptions | None = None,
    load: LoadOptions | None = None, explain: ExplainOptions | None = None, **given: Any,
) -> BatchSummary:  # fmt: skip
    """Classify every row of `input_path` and write it, with its predictions, to `output_path`.

    `model` is a loaded Predictor (or PredictorSet), a run or export folder, or several runs by name (a dict: one
    set of prediction columns each); `options.workers` > 1 needs the folders, which each worker process loads
    with `load`. `explain`: an explanation column (a run only). `given`: FileOptions' and LoadOptions' fields, as
    keywords. At most 2 x workers chunks are in
    flight, so memory stays bounded however long the file is."""
    for name, path in (("input_path", input_path), ("output_path", output_path)):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{name} is a file's path (or '-'), not a {type(path).__name__}; texts in memory go to "
                            "predictor.predict(texts) or predict_scores(texts)")  # fmt: skip
    options, load = split_options(options, load, given)
    with claimed_output(output_path):  # checked inside: a file another command finished meanwhile is not replaced
        return _predict_file(
            model, input_path, check_file_job(input_path, output_path, options, explain), options, load
        )


def _predict_file(model: Predictor | PredictorSet | Target, input_path: str, plan: FilePlan, options: FileOptions,
                  load: LoadOptions | None) -> BatchSummary:  # fmt: skip
    in_fmt, job, target, workers = plan.input_format, plan.job, plan.target, plan.workers
    summary = BatchSummary()
    with summary.timing("read"):  # the first chunk before the model: a bad file fails before it loads or compiles
        chunks = checked_chunks(input_path, in_fmt, options.chunk_size)
        first = next(chunks, None)
        if first is not None:
            if in_fmt != "txt":
                job = replace(job, text_column=text_column_of(model, options, list(first.columns), input_path))
            check_columns(first, job.text_column, input_path)
            chunks = itertools.chain([first], chunks)
        rows = total_rows(input_path, in_fmt)  # a pass over a JSON Lines or text file: reading, so timed as such
    with summary.timing("load"):
        model, load = _resolved(model, load, rows)
        predictor = _predictor(model, workers, load, job)
    # Where someone watches, as training's bars: in a piped log every update is one more carriage-return line.
    shown = options.progress and bars_shown()
    bar = tqdm(total=rows, unit="rows", desc="Predicting", disable=not shown, file=sys.stderr)
    try:
        with _output(target, job.fmt, input_path) as handle:
            _stream(chunks, predictor, _Sink(handle, job.fmt, bar, input_path), 2 * workers, summary)
    finally:
        predictor.close()
        bar.close()
    if isinstance(model, (str, Path)):
        count_predicted(model, summary.predicted)  # towards the run's int8 check (export/int8_gate.py)
    return summary


@dataclass(frozen=True)
class FilePlan:
    """A file prediction's settings, resolved: formats, columns, where it writes, how many workers."""

    input_format: str
    job: ChunkJob
    target: Path | None  # None: stdout
    workers: int


def check_file_job(
    input_path: str, output_path: str, options: FileOptions, explain: ExplainOptions | None = None
) -> FilePlan:
    """Everything about a file prediction that needs neither the file's rows nor the model, checked: the input
    exists, the formats are known, the output may be written, the workers fit the machine."""
    check_input(input_path)
    in_fmt = resolve_format(input_path, options.input_format, INPUT_FORMATS, "--input-format", "txt")
    out_fmt = resolve_format(output_path, options.output_format, OUTPUT_FORMATS, "--output-format", "jsonl")
    if out_fmt == "parquet" and output_path == "-":
        raise UserError("Parquet is written to a file, not stdout: give --output FILE.parquet")
    explain = explain if explain is not None and explain.explain else None
    job = ChunkJob(options.text_column or "text", out_fmt, options.batch_size, explain)  # the file decides (below)
    return FilePlan(in_fmt, job, checked_output(output_path, options.overwrite), _checked_workers(options.workers or 1))


def text_column_of(model: Predictor | PredictorSet | Target, options: FileOptions, columns: list, where: str) -> str:
    """The column of the input that the runs read: --text-column, else the runs' own where the file has it."""
    return column_to_read(options.text_column, trained_text_columns(model), "text", columns, "--text-column", where)


def trained_text_columns(model: Predictor | PredictorSet | Target) -> list[str | None]:
    """The --text-column each run was trained with, read from its files when it is not loaded yet."""
    from ..inference.base import PredictorSet

    if isinstance(model, PredictorSet):
        return [trained_text_columns(model[name])[0] for name in model.names]
    if isinstance(model, (str, Path)):
        return [getattr(records(model)[0], "text_column", None)]
    if isinstance(model, dict):
        return [column for path in model.values() for column in trained_text_columns(path)]
    return [getattr(model.run_config, "text_column", None)]


def _checked_workers(workers: int) -> int:
    """Each worker process loads its own copy of the model: more than the machine's cores only costs memory (a
    fuzzed --workers 70000 took all of it)."""
    cores = os.cpu_count() or 1
    if workers > cores:
        raise UserError(
            f"--workers {workers} is more than this machine's {cores} CPU cores, and each worker loads its own copy "
            f"of the model: use at most {cores}, or --runner ray to spread the work over a cluster"
        )
    return workers


def split_options(options: FileOptions | None, load: LoadOptions | None, given: dict[str, Any]) -> tuple:
    """The keywords of the Python API sorted into the two option models (a misspelt one is refused)."""
    try:
        file_given = {k: v for k, v in given.items() if k in FileOptions.model_fields}
        load_given = {k: v for k, v in given.items() if k not in FileOptions.model_fields}
        return FileOptions.of(options, file_given), LoadOptions.of(load, load_given)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, [*FileOptions.model_fields, *LoadOptions.model_fields])) from None


def _resolved(model: Predictor | PredictorSet | Target, load: LoadOptions, rows: int | None) -> tuple[Any, LoadOptions]:
    """One run folder as what its engine opens (compiled here, once, not by every worker at the same time)."""
    if isinstance(model, (str, Path)):
        return job_target(model, load, expected_texts=rows)
    return model, load


def _predictor(model: Predictor | PredictorSet | Target, workers: int, load: LoadOptions, job: ChunkJob
               ) -> InProcess | WorkerPool:  # fmt: skip
    if workers > 1:
        if not isinstance(model, (str, Path, dict)):
            raise ValueError("workers > 1 needs the run directory, which each worker loads")
        return WorkerPool(model if isinstance(model, dict) else str(model), load, workers, job)
    if isinstance(model, (str, Path, dict)):
        model = open_predictor(model, load)
    return InProcess(model, job)


@contextmanager
def _output(target: Path | None, fmt: str, where: str) -> Iterator[Any]:
    """stdout, or a file that appears only when everything was written (Parquet: from parts, parquet_output.py)."""
    if target is None:
        yield sys.stdout
        return
    if fmt == "parquet":
        from .parquet_output import parquet_output

        with parquet_output(target, where) as parts:
            yield parts
        return
    with staged_file(target) as handle:
        yield handle


@dataclass
class _Sink:
    handle: Any  # a text file, or Parquet's parts (parquet_output.py)
    fmt: str
    bar: Any
    where: str  # the input, for messages


def _stream(
    chunks: Iterator[pd.DataFrame], predictor: InProcess | WorkerPool, sink: _Sink, window: int, summary: BatchSummary
) -> BatchSummary:
    """Submit chunks as they are read, write them back in input order, at most `window` in flight."""
    in_flight: deque = deque()

    def write_oldest() -> None:
        with summary.timing("predict"):
            out, skipped = in_flight.popleft().get()
        with summary.timing("write"):
            write_chunk(out, sink.handle, sink.fmt, first=summary.rows == 0)
            sink.handle.flush()
        summary.rows += len(out)
        summary.skipped_empty += skipped
        summary.predicted += len(out) - skipped
        sink.bar.update(len(out))

    while True:
        with summary.timing("read"):
            chunk = next(chunks, None)
        if chunk is None:
            break
        check_columns(chunk, predictor.job.text_column, sink.where)
        with summary.timing("predict"):
            in_flight.append(predictor.submit(chunk))
        while len(in_flight) >= window:
            write_oldest()
    while in_flight:
        write_oldest()
    return summary
