"""Out-of-sample scores for every training text by k-fold cross-fitting: the texts of fold k are scored by a model
fitted on the other folds only (the TF-IDF baseline, or a real `train` run with the same train settings): the
audit's scores (auditing/) and `train --folds` (folds.py).

A fold is finished when its scores file exists: written last and atomically, so a crash leaves either a finished
fold or one that is trained again, never half of one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import staged_path
from ..config import TrainConfig
from ..errors import UserError, first_line
from ..options import FoldRunOptions
from ..problems.space import LabelSpace

Log = Callable[[str], None]

FOLDS_DIR = "folds"
SCORES_FILE = "scores.npy"
EVAL_FILE = "evaluation.parquet"


@dataclass
class FoldJob:
    """What every fold shares."""

    train: Any  # datasets.Dataset: text, label (encoded), row
    evaluation: Any | None  # the evaluation split (lora: early stopping and calibration of each fold's run)
    space: LabelSpace
    config: TrainConfig  # the train settings of every fold's run
    folder: Path  # where the folds are kept (the audit's folder, or the run's checkpoints)
    scorer: str
    # recipe.train, handed in by the caller: `train --folds` runs here from inside the recipe module
    fit: Callable[..., Any] | None = None


def check_fold_count(k: int, labels: np.ndarray, space: LabelSpace) -> None:
    """Data too small for k folds, refused before any training (`audit --folds` and `train --folds`): for classes,
    every fold's model must see each class that has texts, so each needs k of them; tags and numbers need two
    texts a fold."""
    labels = np.asarray(labels)
    if space.problem.stratified:
        counts = np.bincount(labels.astype(int), minlength=len(space.names))
        rare = [(name, int(c)) for name, c in zip(space.names, counts) if 0 < c < k]
        if rare:
            listed = ", ".join(f"{name} ({c})" for name, c in rare[:5])
            fewest = min(c for _, c in rare)
            fix = f"lower --folds to {fewest} or fewer, or drop" if fewest >= 2 else "add texts to or drop"
            raise UserError(f"--folds {k}: classes with fewer training texts than folds: {listed}; {fix} those "
                            "classes")  # fmt: skip
    elif len(labels) < 2 * k:
        raise UserError(f"--folds {k}: {len(labels)} training texts are too few (each fold needs 2); lower --folds to "
                        f"{max(2, len(labels) // 2)} or fewer")  # fmt: skip


def assign_folds(labels: np.ndarray, space: LabelSpace, k: int, seed: int) -> np.ndarray:
    """[n] the fold of each text; stratified by class for single-label data, so each fold's model sees every class."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(labels)
    splitter = (StratifiedKFold if space.problem.stratified else KFold)(n_splits=k, shuffle=True, random_state=seed)
    target = np.asarray(labels).astype(int) if space.problem.stratified else np.zeros(n)
    fold = np.empty(n, dtype=np.int64)
    for index, (_, held_out) in enumerate(splitter.split(np.zeros(n), target)):
        fold[held_out] = index
    return fold


def _scores_path(job: FoldJob, index: int) -> Path:
    return job.folder / FOLDS_DIR / f"fold-{index + 1}" / SCORES_FILE


def cross_fitted_scores(
    job: FoldJob, fold: np.ndarray, log: Log, where: FoldRunOptions | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """Scores of every text from the model of the fold it was held out of, and each fold's seconds. `where`: the
    unfinished folds one after another here [the default], in worker processes, or as Ray tasks."""
    scores: np.ndarray | None = None
    seconds: dict[str, float] = {}
    k = int(fold.max()) + 1
    pending = [index for index in range(k) if not _scores_path(job, index).exists()]
    where = where or FoldRunOptions()
    if where.runner == "ray" and pending:
        seconds.update(_on_ray(job, fold, pending, where, log))
    elif (where.workers or 1) > 1 and len(pending) > 1:
        seconds.update(_in_workers(job, fold, pending, where.workers or 1, log))
    for index in range(k):
        held_out = np.flatnonzero(fold == index)
        path = _scores_path(job, index)
        started = time.perf_counter()
        if path.exists():  # finished by an earlier call, or just now by a worker
            fold_scores = np.load(path, allow_pickle=False)
            if f"fold-{index + 1}" not in seconds:
                log(f"Fold {index + 1} of {k}: finished earlier, scores read from {path}")
        else:
            log(f"Fold {index + 1} of {k}: {job.scorer} on {len(fold) - len(held_out)} texts, scoring {len(held_out)}")
            fold_scores = _score_fold(job, np.flatnonzero(fold != index), held_out, path.parent, log)
            _save(path, fold_scores)
        seconds.setdefault(f"fold-{index + 1}", round(time.perf_counter() - started, 2))
        if scores is None:
            scores = np.zeros((len(fold), fold_scores.shape[1]), dtype=np.float64)
        scores[held_out] = fold_scores
    assert scores is not None
    return scores, seconds


def _in_workers(job: FoldJob, fold: np.ndarray, pending: list[int], workers: int, log: Log) -> dict[str, float]:
    """The pending folds in worker processes (spawned: no forked torch threads), each saving its own scores. On a
    CPU each takes an equal share of the cores; with GPUs, worker i gets GPU i mod the device count."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    workers = min(workers, len(pending))
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    gpus = torch.cuda.device_count()
    for worker in range(workers):
        slots.put(str(worker % gpus) if gpus else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    log(f"Folds {', '.join(str(i + 1) for i in pending)}: {job.scorer} in {workers} worker processes")
    seconds = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(slots, threads)) as pool:
        futures = {pool.submit(_fold_in_worker, job, fold, index): index for index in pending}
        for future in as_completed(futures):
            index = futures[future]
            seconds[f"fold-{index + 1}"] = future.result()  # a fold's error is raised here, as in one process
            log(f"Fold {index + 1}: finished in {seconds[f'fold-{index + 1}']:.0f} s")
    return seconds


def _on_ray(job: FoldJob, fold: np.ndarray, pending: list[int], where: FoldRunOptions, log: Log) -> dict[str, float]:
    """The pending folds as Ray tasks: each trains in a scratch folder on whichever node runs it and returns its
    scores, saved here as they come, so a node need not share this machine's disk and a crash keeps the folds
    already back. A task takes one GPU where the cluster has them, else the cores of a node (or its share of the
    cluster's cores with --workers)."""
    import ray

    from ..modeling.ray_cluster import ray_session, user_error

    portable = _in_memory(job)  # a dataset read from files pickles as their paths, which other nodes lack
    with ray_session(where.ray_address) as (resources, nodes):
        gpus, cpus = int(resources.get("GPU", 0)), max(1.0, float(resources.get("CPU", 1)))
        at_once = min(where.workers or gpus or nodes, len(pending))
        share = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": max(1.0, cpus // max(1, at_once))}
        threads = max(1, int(share["num_cpus"]))
        log(f"Folds {', '.join(str(i + 1) for i in pending)}: {job.scorer} as Ray tasks "
            f"({'one GPU' if gpus else f'{threads} CPUs'} each)")  # fmt: skip
        remote = ray.remote(_fold_as_task).options(max_retries=0, **share)
        running = {remote.remote(portable, fold, index, threads): index for index in pending}
        seconds = {}
        try:
            while running:
                [done], _ = ray.wait(list(running), num_returns=1)
                index = running.pop(done)
                try:
                    scores, seconds[f"fold-{index + 1}"] = ray.get(done)
                except BaseException as exc:
                    raise user_error(exc) from None
                _save(_scores_path(job, index), scores)
                log(f"Fold {index + 1}: finished in {seconds[f'fold-{index + 1}']:.0f} s")
        finally:  # a failed fold or an interrupt: a cluster that outlives the command trains nothing more for it
            for ref in running:
                ray.cancel(ref, force=True)
    return seconds


def _in_memory(job: FoldJob) -> FoldJob:
    import datasets

    def copied(ds: Any) -> Any:
        return None if ds is None else datasets.Dataset.from_pandas(ds.to_pandas(), features=ds.features)

    return replace(job, train=copied(job.train), evaluation=copied(job.evaluation))


def _fold_as_task(job: FoldJob, fold: np.ndarray, index: int, threads: int) -> tuple[np.ndarray, float]:
    import tempfile

    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lora-sentiment-fold-") as scratch:
        local = replace(job, folder=Path(scratch))
        write_evaluation(local)
        folder = _scores_path(local, index).parent
        scores = _score_fold(local, np.flatnonzero(fold != index), np.flatnonzero(fold == index), folder, quiet)
    return scores, round(time.perf_counter() - started, 2)


def quiet(message: str) -> None:
    """A log that drops every line (a module-level function, so that a fold sent to a Ray worker can carry it)."""


def _init_worker(slots: Any, threads: int) -> None:
    device = slots.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before the worker's first torch import
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _fold_in_worker(job: FoldJob, fold: np.ndarray, index: int) -> float:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    started = time.perf_counter()
    folder = _scores_path(job, index).parent
    scores = _score_fold(job, np.flatnonzero(fold != index), np.flatnonzero(fold == index), folder, lambda _: None)
    _save(_scores_path(job, index), scores)
    return round(time.perf_counter() - started, 2)


def trains_runs(scorer: str) -> bool:
    """Whether the scorer trains a real run per fold (and so needs the evaluation split and a precision)."""
    return "lora" in scorer.split("+")


def _score_fold(job: FoldJob, fit_rows: np.ndarray, held_out: np.ndarray, folder: Path, log: Log) -> np.ndarray:
    if job.scorer == "tfidf":
        return _tfidf_fold(job, fit_rows, held_out)
    if job.scorer == "lora":
        return _lora_fold(job, fit_rows, [job.train["text"][i] for i in held_out], folder, log)
    # lora+tfidf: the mean of both. Their mistakes differ (contextual weights against word counts) while a wrong
    # label contradicts both, so the mean separates wrong labels better than either alone (docs/audit.md). Each
    # member's scores stay beside the fold's, for a look at what each said.
    members = {"tfidf": _tfidf_fold(job, fit_rows, held_out),
               "lora": _lora_fold(job, fit_rows, [job.train["text"][i] for i in held_out], folder, log)}  # fmt: skip
    for name, scores in members.items():
        _save(folder / f"scores-{name}.npy", scores)
    return np.mean(list(members.values()), axis=0)


def _tfidf_fold(job: FoldJob, fit_rows: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    from .baseline import baseline_scores, fit_baseline

    texts, labels = job.train["text"], np.asarray(job.train["label"])
    sample = tfidf_sample_weights(job, labels[fit_rows])
    try:
        pipeline = fit_baseline([texts[i] for i in fit_rows], labels[fit_rows], job.space, seed=job.config.seed,
                                sample_weight=sample)  # fmt: skip
    except ValueError as exc:  # e.g. no word that two texts share: nothing for TF-IDF to learn
        raise UserError(f"--scorer {job.scorer} cannot fit TF-IDF to these texts ({first_line(exc)}); use --scorer "
                        "lora") from None  # fmt: skip
    return np.asarray(baseline_scores(pipeline, [texts[i] for i in held_out], job.space), dtype=np.float64)


def tfidf_sample_weights(job: FoldJob, labels: np.ndarray) -> np.ndarray | None:
    """TF-IDF weighted by the folds' --class-weights, resolved from the fold's own training labels as its LoRA run
    resolves them: `train --folds`' comparison then credits the transformer, not the weighting, and an audit's two
    members read one setting (`audit` resolves auto to none before the folds, docs/audit.md)."""
    from ..problems.space import resolve_class_weights

    weights = resolve_class_weights(job.config.class_weights, job.space, labels)
    return job.space.problem.baseline_sample_weights(labels, weights)


def _lora_fold(job: FoldJob, fit_rows: np.ndarray, held_out: list[str], folder: Path, log: Log) -> np.ndarray:
    """A real train run on the other folds (the job's settings; no baseline, no example predictions, no tracker:
    one tracked run per fold would bury the run the user asked for), then its scores on the held-out texts."""
    from ..inference.classifier import load_classifier

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train.parquet"
    job.train.select(fit_rows).select_columns(["text", "label"]).to_parquet(str(data))
    values = {
        **job.config.model_dump(),
        "data": str(data), "data_config": None, "train_split": "train", "eval_split": None,
        "eval_data": str(job.folder / FOLDS_DIR / EVAL_FILE) if job.evaluation is not None else None,
        "text_column": "text", "label_column": "label", "label_columns": None, "label_separator": None,
        "problem_type": job.space.problem_type, "label_names": job.space.names, "max_train_samples": None,
        "output_dir": str(folder / "run"), "overwrite": True, "resume": False, "examples": [], "baseline": "none",
        "folds": None, "report_to": [],
    }  # fmt: skip
    assert job.fit is not None, "a lora FoldJob needs the train function"
    job.fit(TrainConfig(**values), log=lambda message: log("    " + str(message).replace("\n", "\n    ")),
            step_lines=False)  # fmt: skip
    classifier = load_classifier(folder / "run", engine="torch")
    scores = classifier.predict_scores(held_out)
    data.unlink()  # a copy of the caller's texts; the fold's run and scores stay
    return np.asarray(scores, dtype=np.float64)


def write_evaluation(job: FoldJob) -> None:
    """The evaluation split, encoded, where every fold's run reads it (scorers that train runs only)."""
    if not trains_runs(job.scorer) or job.evaluation is None:
        return
    path = job.folder / FOLDS_DIR / EVAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_path(path) as partial:
        job.evaluation.select_columns(["text", "label"]).to_parquet(str(partial))


def _save(path: Path, scores: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_path(path, ".npy") as partial:
        np.save(partial, scores, allow_pickle=False)
