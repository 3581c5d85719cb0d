"""Batch prediction on Ray Data: a file, folder or glob of tables in, a folder of prediction files out.

Ray Data streams the work: one read task per input file (our own reader, so rows parse exactly as with
`predict --input`), a pool of actors that each load the run once and predict whole chunks, and Ray's writers,
one output file per block. Every output row carries `input_file` and `input_row` (0-based within that file),
so sorting on the two gives the input order back. The output folder is built hidden beside the target and
renamed into place only when every file was written: a failed run leaves nothing behind."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import staged
from ..data.tables import INPUT_FORMATS, STDIO, checked_chunks, checked_output, claimed_output, resolve_format
from ..errors import UserError
from ..modeling.ray_cluster import check_ray, ray_session, user_error
from ..options import ExplainOptions, FileOptions, LoadOptions
from .columns import ChunkJob, with_predictions
from .columns import check_columns as check_prediction_columns
from .files import split_options, text_column_of
from .workers import open_in_worker

ROW_COLUMNS = ("input_file", "input_row")
RAY_OUTPUT_FORMATS = ("parquet", "jsonl", "csv")
_MISSING_RAY = "--runner ray needs Ray Data: pip install 'lora-sentiment[ray]'"
# Scheduling share of a read or write task: they parse and serialise, while the actors hold the cores.
_IO_TASK_CPUS = 0.25


@dataclass
class RayPlan:
    files: list[str]
    fmt: str
    workers: int
    cpus_per_worker: float
    gpus_per_worker: int
    threads: int


def check_ray_job(output_path: str, options: FileOptions, ray_address: str | None) -> tuple[str, Path]:
    """A Ray prediction's settings, before any file is read or Ray starts: Ray is installed, the address reads as
    one, the output folder may be written. The output format and folder, resolved."""
    check_ray(ray_address, _MISSING_RAY)
    out_fmt = _output_format(output_path, options.output_format)
    target = checked_output(output_path, options.overwrite, folder=True)  # not stdout: _output_format refused it
    assert target is not None
    return out_fmt, target


def input_files(path: str, input_format: str | None) -> tuple[list[str], str]:
    """The files behind --input (a file, a folder of files, or a glob) and their one format."""
    if path == STDIO:
        raise UserError("--runner ray reads files, not stdin; give --input a file, folder or glob")
    if any(c in path for c in "*?["):
        files = sorted(f for f in glob.glob(path, recursive=True) if Path(f).is_file())
    elif Path(path).is_dir():
        files = sorted(str(f) for f in Path(path).iterdir() if f.is_file() and _is_data_file(f, input_format))
    elif Path(path).is_file():
        files = [path]
    else:
        raise UserError(f"input not found: {path} (check --input)")
    if not files:
        raise UserError(f"no input files in {path}: it needs {', '.join(sorted(set(INPUT_FORMATS)))} files")
    formats = {f: resolve_format(f, input_format, INPUT_FORMATS, "--input-format", "txt") for f in files}
    kinds = sorted(set(formats.values()))
    if len(kinds) > 1:
        raise UserError(
            f"{path} mixes {' and '.join(kinds)} files; predict one format at a time (a glob such as "
            f"{Path(path) / '*.parquet'})"
        )
    return files, kinds[0]


def _is_data_file(path: Path, input_format: str | None) -> bool:
    # Spark / Ray / Hadoop leave _SUCCESS and .crc files beside their data; a folder means its data files.
    if path.name.startswith((".", "_")):
        return False
    return input_format is not None or path.suffix.lower() in INPUT_FORMATS


def checked_text_column(files: list[str], fmt: str, model: str, options: FileOptions) -> str:
    """The column every input file is read from (--text-column, else the run's own where the first file with rows
    has it), and every file opens and has it, before any work starts: one bad file fails the run now."""
    column = "text" if fmt == "txt" else options.text_column
    for path in files:
        first = next(checked_chunks(path, fmt, 1), None)
        if first is None:
            continue
        if column is None:
            column = text_column_of(model, options, list(first.columns), path)
        check_prediction_columns(first, column, path)
        clash = [c for c in ROW_COLUMNS if c in first.columns]
        if clash:
            raise UserError(f"{path} already has a column named {clash[0]!r}, which --runner ray writes; rename it")
    return column or "text"


def plan(files: list[str], fmt: str, workers: int | None, resources: dict[str, float], nodes: int) -> RayPlan:
    """Actors: one per GPU where the cluster has GPUs, else one per node with its cores (or --workers)."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1")
    if workers is not None and workers > max(int(cpus), gpus, 1):
        raise UserError(
            f"--workers {workers} is more than the cluster's {int(cpus)} CPUs and {gpus} GPUs: each worker is an "
            "actor with its own copy of the model; use fewer"
        )
    if gpus:
        count = workers or gpus
        return RayPlan(files, fmt, count, 1.0, 1, 1)
    count = workers or max(1, nodes)
    # Each actor leaves room beside it for a read and a write task, on whichever node it lands.
    share = max(0.5, cpus / count - 2 * _IO_TASK_CPUS)
    return RayPlan(files, fmt, count, share, 0, max(1, round(cpus / count)))


def _read_files(batch: pd.DataFrame, fmt: str, text_column: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """A read task: input files as DataFrames of `chunk_size` rows, each row numbered within its file."""
    for path, name in zip(batch["path"], batch["name"]):
        start = 0
        for chunk in checked_chunks(path, fmt, chunk_size):
            check_prediction_columns(chunk, text_column, name)
            chunk = chunk.reset_index(drop=True)
            chunk.insert(0, "input_row", range(start, start + len(chunk)))
            chunk.insert(0, "input_file", name)
            start += len(chunk)
            yield chunk


class _Predictor:
    """An actor: loads the model once, then adds prediction columns to each chunk it is given."""

    def __init__(self, target: str, options: LoadOptions, threads: int, job: ChunkJob):
        self.predictor = open_in_worker(target, options, threads)  # Ray shows an actor only its own GPU
        self.job = job

    def __call__(self, chunk: pd.DataFrame) -> pd.DataFrame:
        return with_predictions(chunk, self.predictor, self.job)[0]


@dataclass
class RaySummary:
    files_in: int
    files_out: int
    rows: int
    workers: int
    output: Path


def predict_on_ray(
    model: str, input_path: str, output_path: str, options: FileOptions | None = None,
    load: LoadOptions | None = None, explain: ExplainOptions | None = None, **given: Any,
) -> RaySummary:  # fmt: skip
    """Classify every row of the files behind `input_path` on Ray (at `ray_address=`, else a local Ray started
    for this call); the predictions go to the folder `output_path`, one file per block, each row with its
    `input_file` and `input_row`. `model`: a run or export folder, loaded once by each actor. `explain`: each
    row's explanation too (a run, on torch: `load` should say engine torch, as `predict --explain` does).
    `given`: `ray_address`, and FileOptions' and LoadOptions' fields, as keywords (as `predict_file` takes them)."""
    ray_address = given.pop("ray_address", None)
    options, load = split_options(options, load, given)
    with claimed_output(output_path):
        out_fmt, target = check_ray_job(output_path, options, ray_address)
        files, fmt = input_files(input_path, options.input_format)
        explain = explain if explain is not None and explain.explain else None
        job = ChunkJob(checked_text_column(files, fmt, model, options), out_fmt, options.batch_size, explain)
        from ..opening import job_target

        resolved, load = job_target(model, load)  # compiled once here, not by every actor (or torch while it waits)
        model = str(Path(resolved).absolute())
        with _ray_session(ray_address, options.progress) as (resources, nodes):
            steps = plan(files, fmt, options.workers, resources, nodes)
            with staged(target) as staging:  # an input with no rows still gives an (empty) output folder
                try:
                    _run(steps, (model, load), staging, job, options.chunk_size)
                except BaseException as exc:
                    raise user_error(exc) from None
                written = sorted(f for f in staging.iterdir() if f.is_file())
                rows = sum(_count_rows(f, out_fmt) for f in written)
    from ..export.compiled import count_predicted

    count_predicted(model, rows)  # towards the run's int8 check (export/int8_gate.py)
    return RaySummary(len(files), len(written), rows, steps.workers, target)


def _run(steps: RayPlan, model: tuple[str, LoadOptions], staging: Path, job: ChunkJob, chunk_size: int) -> None:
    import ray.data

    # Workers open files by absolute path (their working directory is not ours); rows keep the name as given.
    items = [{"path": os.path.abspath(f), "name": f} for f in steps.files]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.map_batches(
        _read_files, fn_args=(steps.fmt, job.text_column, chunk_size), batch_size=1, batch_format="pandas",
        num_cpus=_IO_TASK_CPUS,
    )  # fmt: skip
    dataset = dataset.map_batches(
        _Predictor, fn_constructor_args=(*model, steps.threads, job), batch_size=chunk_size, batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=steps.workers), num_cpus=steps.cpus_per_worker,
        num_gpus=steps.gpus_per_worker,
    )  # fmt: skip
    write = {"parquet": dataset.write_parquet, "jsonl": dataset.write_json, "csv": dataset.write_csv}[job.fmt]
    extra = {"force_ascii": False} if job.fmt == "jsonl" else {}
    write(str(staging.absolute()), ray_remote_args={"num_cpus": _IO_TASK_CPUS}, **extra)


def _output_format(output_path: str, given: str | None) -> str:
    if output_path == STDIO:
        raise UserError("--runner ray writes a folder of files, not stdout; give --output a folder")
    fmt = given or {".parquet": "parquet", ".jsonl": "jsonl", ".csv": "csv"}.get(Path(output_path).suffix.lower())
    if fmt is None:
        return "parquet"
    if fmt not in RAY_OUTPUT_FORMATS:
        raise UserError(f"--runner ray writes {', '.join(RAY_OUTPUT_FORMATS)}; pass --output-format with one of them")
    return fmt


@contextmanager
def _ray_session(address: str | None, progress: bool) -> Iterator[tuple[dict[str, float], int]]:
    """modeling/ray_cluster.py's session, with Ray Data quiet where this command started Ray."""
    # Read by Ray Data whenever it (re)configures its loggers, in this process and in its workers.
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(Path(__file__).with_name("ray_data_logging.yaml")))
    import ray
    from ray.data import DataContext

    ours = not ray.is_initialized()  # a Python caller's own session is used as it is
    with ray_session(address) as cluster:
        if ours:
            context = DataContext.get_current()
            context.enable_progress_bars = progress
            context.print_on_execution_start = False
            # A failing task is logged there with Ray's whole stack; it reaches the user as one line from us.
            logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        yield cluster


def _count_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "jsonl":
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    import pyarrow.csv as pacsv

    return sum(batch.num_rows for batch in pacsv.open_csv(path))
