"""Batch prediction on files: read a table in chunks, classify, and write each chunk as it is done.

Memory stays bounded by the chunk size, whatever the file size; `-` reads stdin / writes stdout. Written to a
temporary file beside the output and renamed at the end, so a failed run never leaves half a predictions file."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import sys
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .atomic import staging_path
from .data import check_field_counts, read_error_fix
from .errors import UserError, first_line
from .measure import Stages
from .outputs import best_labels

INPUT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "txt",
}
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PREDICTION_COLUMNS = ("predicted_label", "predicted_label_name", "probability", "predicted_labels", "predicted_value")
STDIO = "-"
# Characters that str.splitlines() and some JSONL readers take as line ends; json.dumps leaves them raw.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


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


def resolve_format(path: str, given: str | None, formats: dict[str, str], flag: str, stdio_default: str) -> str:
    if given:
        return given
    if path == STDIO:
        return stdio_default
    suffix = Path(path).suffix.lower()
    if suffix not in formats:
        known = ", ".join(sorted(set(formats)))
        raise UserError(f"cannot tell the format of {path} from its extension; use one of {known} or pass {flag}")
    return formats[suffix]


def read_chunks(path: str, fmt: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The input as DataFrames of at most `chunk_size` rows. CSV/TSV values stay strings so rows are written
    back exactly as they were read."""
    source: Any = sys.stdin if path == STDIO else path
    if path != STDIO and not Path(path).is_file():
        raise UserError(f"input file not found: {path} (check --input)")
    if fmt in ("csv", "tsv"):
        yield from _csv_chunks(path, source, "," if fmt == "csv" else "\t", chunk_size)
    elif fmt == "jsonl":
        with pd.read_json(source, lines=True, dtype=False, chunksize=chunk_size) as reader:
            yield from reader
    elif fmt == "parquet":
        # Parquet needs random access: stdin is read whole first.
        parquet = pq.ParquetFile(io.BytesIO(sys.stdin.buffer.read()) if path == STDIO else path)
        for batch in parquet.iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()
    elif fmt == "txt":
        handle = sys.stdin if path == STDIO else open(path, encoding="utf-8", errors="replace", newline="")
        try:
            lines: list[str] = []
            for line in handle:
                lines.append(line.rstrip("\r\n"))
                if len(lines) == chunk_size:
                    yield pd.DataFrame({"text": lines})
                    lines = []
            if lines:
                yield pd.DataFrame({"text": lines})
        finally:
            if handle is not sys.stdin:
                handle.close()
    else:
        raise UserError(f"unknown input format {fmt!r}; use one of csv, tsv, jsonl, parquet, txt")


def _csv_chunks(path: str, source: Any, separator: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """CSV/TSV chunks whose values stay strings. A row with more fields than the header is refused: a file is
    checked up front, naming the line; stdin cannot be read twice, so there pandas' own data-loss warning
    (with index_col=False, which keeps it from turning the extra field into an index) becomes the error."""
    if path != STDIO:
        check_field_counts(Path(path), separator)
    reader = pd.read_csv(source, sep=separator, dtype=str, keep_default_na=False, chunksize=chunk_size, index_col=False)
    with reader, warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            yield from reader
        except pd.errors.ParserWarning:
            raise UserError(
                f"a row of {path} has more fields than the header: quote the field that contains the separator "
                '("..."), or use TSV or JSONL'
            ) from None


def total_rows(path: str, fmt: str) -> int | None:
    """Known up front only where the file says so (Parquet metadata); other formats count as they go."""
    if fmt == "parquet" and path != STDIO:
        return pq.ParquetFile(path).metadata.num_rows
    return None


def with_predictions(
    chunk: pd.DataFrame, text_column: str, classifier: Any, fmt: str, batch_size: int | None
) -> tuple[pd.DataFrame, int]:
    """The chunk with prediction columns added (see _with_predictions_of); several runs (a ClassifierSet) add
    one set each, prefixed with the run's name: NAME.predicted_label..."""
    if not hasattr(classifier, "members"):
        return _with_predictions_of(chunk, text_column, classifier, fmt, batch_size)
    out, skipped = chunk, 0
    for name in classifier.names:
        own, skipped = _with_predictions_of(chunk[[text_column]], text_column, classifier[name], fmt, batch_size)
        columns = own.drop(columns=[text_column]).add_prefix(f"{name}.")
        taken = [c for c in columns if c in out.columns]
        if taken:
            raise UserError(f"the input already has a column named {taken[0]!r}, which predictions go to; rename it")
        out = out.join(columns)
    return out, skipped


def _with_predictions_of(
    chunk: pd.DataFrame, text_column: str, classifier: Any, fmt: str, batch_size: int | None
) -> tuple[pd.DataFrame, int]:
    """The chunk with prediction columns added; rows whose text is missing or blank get empty predictions.

    Single-label: predicted_label, predicted_label_name, probability. Multi-label: predicted_labels (a list in
    JSONL and Parquet, ';'-joined in CSV/TSV). Regression: predicted_value. Classification also gets every label's
    probability: prob_<label> columns, or one `probabilities` object per JSONL row."""
    space = classifier.space
    texts = chunk[text_column]
    present = texts.map(lambda t: isinstance(t, str) and bool(t.strip())).to_numpy(dtype=bool)
    scores = np.full((len(chunk), space.num_outputs), np.nan)
    if present.any():
        scores[present] = classifier.predict_scores(texts[present].tolist(), batch_size=batch_size)
    out = chunk.copy()
    if space.problem_type == "regression":
        out["predicted_value"] = scores[:, 0]
        return out, int((~present).sum())
    if space.problem_type == "multi-label":
        on = scores >= space.decision_thresholds()
        tags = [[n for n, hit in zip(space.names, row) if hit] if ok else None for row, ok in zip(on, present)]
        joined = [";".join(t) if t is not None else None for t in tags]
        out["predicted_labels"] = tags if fmt in ("jsonl", "parquet") else joined
    else:
        _add_best_label(out, scores, present, space.names)
    if fmt == "jsonl":
        out["probabilities"] = [
            {name: round(float(p), 6) for name, p in zip(space.names, row)} if ok else None
            for row, ok in zip(scores, present)
        ]
    else:
        for i, name in enumerate(space.names):
            out[f"prob_{name}"] = scores[:, i]
    return out, int((~present).sum())


def _add_best_label(out: pd.DataFrame, probabilities: np.ndarray, present: np.ndarray, names: list[str]) -> None:
    best, confidence_present = best_labels(probabilities[present])
    out["predicted_label"] = pd.array([None] * len(out), dtype="Int64")
    out.loc[present, "predicted_label"] = best
    out["predicted_label_name"] = pd.Series([None] * len(out), dtype=object, index=out.index)
    out.loc[present, "predicted_label_name"] = [names[i] for i in best]
    confidence = np.full(len(out), np.nan)
    confidence[present] = confidence_present
    out["probability"] = confidence.round(6)


def write_chunk(frame: pd.DataFrame, handle: IO[str], fmt: str, first: bool) -> None:
    if fmt in ("csv", "tsv"):
        frame.to_csv(
            handle,
            sep="," if fmt == "csv" else "\t",
            header=first,
            index=False,
            float_format="%.6g",
            lineterminator="\n",
        )
    else:
        frame = frame.astype(object).where(frame.notna(), None)  # JSON has null, not NaN
        for record in frame.to_dict(orient="records"):
            line = json.dumps(record, ensure_ascii=False, default=_json_default, allow_nan=False)
            handle.write(line.translate(_LINE_BREAKS) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is pd.NA:
        return None
    return str(value)


class _InProcess:
    """Predicts each chunk right here, with the already loaded classifier."""

    def __init__(self, classifier: Any, text_column: str, fmt: str, batch_size: int | None):
        self.args = (text_column, classifier, fmt, batch_size)

    def submit(self, chunk: pd.DataFrame) -> Any:
        text_column, classifier, fmt, batch_size = self.args
        result = with_predictions(chunk, text_column, classifier, fmt, batch_size)
        return _Done(result)

    def close(self) -> None:
        pass


@dataclass
class _Done:
    value: Any

    def get(self) -> Any:
        return self.value


class _WorkerPool:
    """Worker processes that each load the run once and predict whole chunks: on a multi-core CPU each takes an
    equal share of the cores, with GPUs each takes one device (worker i on GPU i mod the device count)."""

    def __init__(
        self, run_dir: str | dict, options: dict, workers: int, text_column: str, fmt: str, batch_size: int | None
    ):
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or tokenizer threads
        self.pool = context.Pool(workers, initializer=_init_worker, initargs=(run_dir, options, threads))
        self.args = (text_column, fmt, batch_size)

    def submit(self, chunk: pd.DataFrame) -> Any:
        return self.pool.apply_async(_predict_in_worker, (chunk, *self.args))

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


_worker_classifier: Any = None
_worker_error: BaseException | None = None


def _init_worker(run_dir: str | dict, options: dict, threads: int) -> None:
    # A failing initializer would make the pool restart workers forever: keep the error for the first task.
    global _worker_classifier, _worker_error
    try:
        index = (multiprocessing.current_process()._identity or (1,))[0] - 1
        _worker_classifier = open_in_worker(run_dir, options, threads, gpu_index=index)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the main process by the first task
        _worker_error = exc


def open_in_worker(run_dir: str | dict, options: dict, threads: int, gpu_index: int = 0) -> Any:
    """A run or export (or several runs, by name) loaded in a worker process that owns `threads` cores, or a
    GPU where there is one."""
    from .exported import ExportedClassifier, is_export

    # An export's runtime takes its share of the cores itself; no torch needed.
    if not isinstance(run_dir, dict) and is_export(run_dir):
        return ExportedClassifier.open(run_dir, threads=threads, **options)
    import torch  # in a run's worker only: the parent process that reads and writes files never loads it

    torch.set_num_threads(threads)
    device = None
    if torch.cuda.is_available():
        device = f"cuda:{gpu_index % torch.cuda.device_count()}"
    return _open(run_dir, device=device, **options)


def _open(runs: str | Path | dict, **options: Any) -> Any:
    if isinstance(runs, dict):
        from .multi import load_classifiers

        return load_classifiers(runs, **options)
    from .exported import open_classifier  # torch loads only where a run's model runs in this process

    return open_classifier(runs, **options)


def _predict_in_worker(
    chunk: pd.DataFrame, text_column: str, fmt: str, batch_size: int | None
) -> tuple[pd.DataFrame, int]:
    if _worker_error is not None:
        raise _worker_error
    return with_predictions(chunk, text_column, _worker_classifier, fmt, batch_size)


def predict_file(
    classifier: Any,
    input_path: str,
    output_path: str,
    *,
    text_column: str = "text",
    input_format: str | None = None,
    output_format: str | None = None,
    chunk_size: int = 2048,
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
    precision: str = "auto",
    long_text: str = "truncate",
    stride: int | None = None,
) -> BatchSummary:
    """Classify every row of `input_path` and write it, with its predictions, to `output_path`.

    `classifier` is a loaded Classifier (or ClassifierSet), a run directory, or several runs by name (a dict:
    one set of prediction columns each); `workers` > 1 needs the folders, which each worker process loads with
    `precision`, `long_text` and `stride`. At most 2 x workers chunks are in flight, so memory
    stays bounded however long the file is."""
    in_fmt = resolve_format(input_path, input_format, INPUT_FORMATS, "--input-format", "txt")
    out_fmt = resolve_format(output_path, output_format, OUTPUT_FORMATS, "--output-format", "jsonl")
    text_column = "text" if in_fmt == "txt" else text_column
    target = checked_output(output_path, overwrite)
    if chunk_size < 1:
        raise UserError("--chunk-size must be at least 1")
    if workers < 1:
        raise UserError("--workers must be at least 1")
    options = {"precision": precision, "long_text": long_text, "stride": stride}
    summary = BatchSummary()
    with summary.timing("load"):
        predictor = _predictor(classifier, workers, options, (text_column, out_fmt, batch_size))
    bar = tqdm(
        total=total_rows(input_path, in_fmt), unit="rows", desc="Predicting", disable=not progress, file=sys.stderr
    )
    try:
        with _atomic_output(target) as handle:
            chunks = checked_chunks(input_path, in_fmt, chunk_size)
            return _stream(chunks, predictor, handle, out_fmt, (text_column, input_path), bar, 2 * workers, summary)
    finally:
        predictor.close()
        bar.close()


def checked_output(output_path: str, overwrite: bool) -> Path | None:
    if output_path == STDIO:
        return None
    target = Path(output_path)
    if target.exists() and not overwrite:
        raise UserError(f"--output {target} exists; pass --overwrite to replace it or choose another --output")
    if not target.parent.is_dir():
        raise UserError(f"the folder of --output {target} does not exist; create it first")
    return target


def _predictor(classifier: Any, workers: int, options: dict, args: tuple[str, str, int | None]) -> Any:
    if workers > 1:
        if not isinstance(classifier, (str, Path, dict)):
            raise ValueError("workers > 1 needs the run directory, which each worker loads")
        return _WorkerPool(classifier if isinstance(classifier, dict) else str(classifier), options, workers, *args)
    if isinstance(classifier, (str, Path, dict)):
        classifier = _open(classifier, **options)
    return _InProcess(classifier, *args)


@contextmanager
def _atomic_output(target: Path | None) -> Iterator[IO[str]]:
    """stdout, or a hidden temporary file beside `target` renamed over it only when everything was written."""
    if target is None:
        yield sys.stdout
        return
    temporary = staging_path(target)
    handle = open(temporary, "w", encoding="utf-8", newline="")
    try:
        yield handle
    except BaseException:
        handle.close()
        temporary.unlink(missing_ok=True)
        raise
    handle.close()
    os.replace(temporary, target)


def _stream(
    chunks: Iterator[pd.DataFrame],
    predictor: Any,
    handle: IO[str],
    fmt: str,
    source: tuple[str, str],
    bar: Any,
    window: int,
    summary: BatchSummary,
) -> BatchSummary:
    """Submit chunks as they are read, write them back in input order, at most `window` in flight."""
    text_column, where = source
    in_flight: deque = deque()

    def write_oldest() -> None:
        with summary.timing("predict"):
            out, skipped = in_flight.popleft().get()
        with summary.timing("write"):
            write_chunk(out, handle, fmt, first=summary.rows == 0)
            handle.flush()
        summary.rows += len(out)
        summary.skipped_empty += skipped
        summary.predicted += len(out) - skipped
        bar.update(len(out))

    while True:
        with summary.timing("read"):
            chunk = next(chunks, None)
        if chunk is None:
            break
        _check_columns(chunk, text_column, where)
        with summary.timing("predict"):
            in_flight.append(predictor.submit(chunk))
        while len(in_flight) >= window:
            write_oldest()
    while in_flight:
        write_oldest()
    return summary


def _check_columns(chunk: pd.DataFrame, text_column: str, where: str) -> None:
    if text_column not in chunk.columns:
        columns = ", ".join(map(str, chunk.columns))
        raise UserError(f"no column {text_column!r} in {where}; columns are: {columns} (set --text-column)")
    taken = [c for c in PREDICTION_COLUMNS if c in chunk.columns]
    if taken:
        raise UserError(
            f"{where} already has a column named {taken[0]!r}, which predictions are written to; rename it first"
        )


def checked_chunks(
    path: str, fmt: str, chunk_size: int, format_fix: str = "or pass --input-format"
) -> Iterator[pd.DataFrame]:
    """Parser errors become one-line messages naming the file and the likely fix."""
    chunks = read_chunks(path, fmt, chunk_size)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except UserError:
            raise
        except pd.errors.EmptyDataError:
            return
        except (
            Exception
        ) as exc:  # pandas and pyarrow raise many types (ParserError, ArrowInvalid, UnicodeDecodeError...)
            raise UserError(
                f"could not read {path} as {fmt}: {first_line(exc)} ({read_error_fix(exc)}, {format_fix})"
            ) from None
        yield chunk
