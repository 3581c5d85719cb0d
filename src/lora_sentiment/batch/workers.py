"""Where a file's chunks are predicted: right here with the loaded model, or in worker processes that each load
the model once and predict whole chunks (on a multi-core CPU each takes an equal share of the cores; with GPUs,
each one device, worker i on GPU i mod the device count)."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..options import LoadOptions
from .columns import ChunkJob, with_predictions

if TYPE_CHECKING:
    from ..inference.base import Predictor, PredictorSet

Target = str | Path | dict  # a run or export folder, or several runs by name


class InProcess:
    """Predicts each chunk right here, with the already loaded model."""

    def __init__(self, predictor: Predictor | PredictorSet, job: ChunkJob):
        self.predictor, self.job = predictor, job

    def submit(self, chunk: pd.DataFrame) -> Any:
        return _Done(with_predictions(chunk, self.predictor, self.job))

    def close(self) -> None:
        pass


@dataclass
class _Done:
    value: Any

    def get(self) -> Any:
        return self.value


class WorkerPool:
    """Worker processes that each load the model once and predict whole chunks."""

    def __init__(self, target: Target, options: LoadOptions, workers: int, job: ChunkJob):
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or tokenizer threads
        self.pool = context.Pool(workers, initializer=_init_worker, initargs=(target, options, threads))
        self.job = job

    def submit(self, chunk: pd.DataFrame) -> Any:
        return self.pool.apply_async(_predict_in_worker, (chunk, self.job))

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


_worker_predictor: Any = None
_worker_error: BaseException | None = None


def _init_worker(target: Target, options: LoadOptions, threads: int) -> None:
    # A failing initializer would make the pool restart workers forever: keep the error for the first task.
    global _worker_predictor, _worker_error
    try:
        index = (multiprocessing.current_process()._identity or (1,))[0] - 1
        _worker_predictor = open_in_worker(target, options, threads, gpu_index=index)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the main process by the first task
        _worker_error = exc


def open_in_worker(target: Target, options: LoadOptions, threads: int, gpu_index: int = 0) -> Any:
    """A run or export (or several runs, by name) loaded in a worker process that owns `threads` cores, or a
    GPU where there is one."""
    from ..opening import open_predictor
    from ..runs.run import is_export

    # An export's runtime takes its share of the cores itself; no torch needed.
    if not isinstance(target, dict) and is_export(target):
        return open_predictor(target, options.model_copy(update={"threads": threads}))
    import torch  # in a run's worker only: the parent process that reads and writes files never loads it

    torch.set_num_threads(threads)
    if torch.cuda.is_available() and options.device is None:
        options = options.model_copy(update={"device": f"cuda:{gpu_index % torch.cuda.device_count()}"})
    return open_predictor(target, options)


def _predict_in_worker(chunk: pd.DataFrame, job: ChunkJob) -> tuple[pd.DataFrame, int]:
    if _worker_error is not None:
        raise _worker_error
    return with_predictions(chunk, _worker_predictor, job)
