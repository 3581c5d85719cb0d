"""`lora-sentiment tune`: an Optuna search over training settings, each trial a real `train`.

Each trial's per-epoch evaluation is reported to Optuna, whose median pruner stops trials that fall behind
the others at the same epoch. The study lives in an SQLite file in the output folder unless --storage names
another database, so running the same command again continues it, and several processes (or machines, on
a shared database) can work on one study at once. The output folder holds the trials' runs, a
`best_config.yaml` that `train --config` reproduces, a leaderboard (printed and saved) and plots."""

from __future__ import annotations

import logging
import math
import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

from ..config import TrainConfig
from ..errors import UserError
from ..options import TuneOptions
from ..problems.metrics import LOWER_IS_BETTER
from ..runs.run import STUDY_FILE, TRIALS_DIR
from .checks import check_tune, sqlite_file
from .search_space import Dimension
from .tracking import study_run
from .tune_results import TuneResult, finish, fixed_settings, short

Log = Callable[[str], None]

HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 90  # a trial whose process is silent for GRACE_SECONDS is failed and retried


def tune(
    config: TrainConfig, search: list[Dimension], options: TuneOptions | None = None, *, log: Log = print, **given: Any
) -> TuneResult:
    """Search `search` around `config` until the study holds `options.trials` finished trials (counted across
    every process working on it) or `options.timeout` seconds pass. `config.output_dir` is the study's folder.
    `given`: TuneOptions' fields, as keywords."""
    from .recipe import train_config

    config, options = train_config(config), TuneOptions.of(options, given)
    trials, study_name = options.trials, options.study_name
    check_tune(config, options)
    optuna = _optuna()
    folder = Path(config.output_dir).expanduser()
    metric = _objective_metric(config, log)  # loads the data once: bad input fails here, before any trial
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=study_name, storage=_storage(optuna, options.storage, folder), load_if_exists=True,
        direction="minimize" if metric in LOWER_IS_BETTER else "maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),  # each trial reseeds it by its number (draw)
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )  # fmt: skip
    _check_same_search(study, config, search, metric)
    if not study.trials:  # the settings given come first, so the leaderboard shows what the search adds
        given = _with_sized_settings(config)
        start = {d.name: getattr(given, d.name) for d in search if d.contains(getattr(given, d.name))}
        _queue_first(study, start, options.storage, folder)
    done = _finished(study)
    direction = study.direction.name.lower()
    log(f"Study {study_name!r}: {done} of {trials} trials finished; objective: {metric} ({direction})")
    if done < trials:
        objective = _Objective(config, search, metric, folder, log)
        with study_run(config, study_name):  # --report-to mlflow: the trials' runs nest in the study's
            _optimize(study, objective, trials, options.timeout, log)
    return finish(study, config, metric, folder, options.keep, log)


def _queue_first(study: Any, start: dict[str, Any], url: str | None, folder: Path) -> None:
    """The given settings queued as a fresh study's first trial, once. Optuna's skip_if_exists reads the trials
    and queues in two transactions, so two processes starting one study together both queued it (it then ran
    twice); on an SQLite file (the study's own, or --storage's) the read and the queueing are one step under a
    file lock beside it. A server database shared across machines keeps that small window."""
    database = folder / STUDY_FILE if url is None else sqlite_file(url)
    if database is None:
        study.enqueue_trial(start, skip_if_exists=True)
        return
    from filelock import FileLock

    with FileLock(database.with_name(database.name + ".lock")):
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial(start)


def _optimize(study: Any, objective: _Objective, trials: int, timeout: float | None, log: Log) -> None:
    """study.optimize until the study holds `trials` finished trials. A trial that another process marked failed
    while it still ran (its heartbeat more than GRACE_SECONDS late: a paused, swapping or overloaded machine)
    cannot be told its result; Optuna has already queued it again, so this process goes on rather than crash."""
    import time

    import optuna

    stop = optuna.study.MaxTrialsCallback(trials, states=_finished_states(optuna))
    deadline = None if timeout is None else time.monotonic() + timeout
    while (left := trials - _finished(study)) > 0:
        seconds = None if deadline is None else deadline - time.monotonic()
        if seconds is not None and seconds <= 0:
            return
        quiet = _LostTrialWarnings(objective)
        optimizing = logging.getLogger("optuna.study._optimize")
        optimizing.addFilter(quiet)
        try:
            study.optimize(objective, n_trials=left, timeout=seconds, callbacks=[stop])
            return
        except (ValueError, AssertionError):  # Optuna's refusal to record a trial that is no longer running
            lost = objective.failed_elsewhere
            if lost is None or _state(study, lost) != "FAIL":
                raise
            objective.failed_elsewhere = None
            log(f"Trial {lost} was marked failed by another process while it ran (no heartbeat for "
                f"{GRACE_SECONDS} s); its result is dropped and Optuna runs its settings again")  # fmt: skip
        finally:
            optimizing.removeFilter(quiet)


class _LostTrialWarnings(logging.Filter):
    """Drops Optuna's warnings (a traceback, then "failed with value None") about the trial another process failed
    while it ran here: the line `_optimize` logs says what happened and what follows."""

    def __init__(self, objective: _Objective):
        super().__init__()
        self.objective = objective

    def filter(self, record: logging.LogRecord) -> bool:
        lost = self.objective.failed_elsewhere
        return lost is None or not record.getMessage().startswith(f"Trial {lost} failed")


def _state(study: Any, number: int) -> str:
    return next(t.state.name for t in study.get_trials(deepcopy=False) if t.number == number)


def draw(trial: Any, search: list[Dimension], seed: int) -> dict[str, Any]:
    """The trial's settings, drawn by a sampler seeded with its number. Two processes that start on one study
    together see the same finished trials, so one seed each drew the same settings, and both trained them side by
    side; trial numbers are the storage's own, unique across processes, and one process still draws as
    reproducibly as before. (TPE draws every setting here, in `suggest`, not when the trial is asked for.)"""
    import optuna

    trial.study.sampler = optuna.samplers.TPESampler(seed=(seed + trial.number) % 2**32)
    return {d.name: d.suggest(trial) for d in search}


class _Objective:
    """One trial: the drawn settings on top of `config`, trained for real in OUT/trials/trial-NNNN."""

    def __init__(self, config: TrainConfig, search: list[Dimension], metric: str, folder: Path, log: Log):
        self.config, self.search, self.metric, self.folder, self.log = config, search, metric, folder, log
        self.failed_elsewhere: int | None = None  # the trial that another process failed while it ran here

    def __call__(self, trial: Any) -> float:
        import optuna

        self.failed_elsewhere = None
        try:
            return self._run(trial)
        except optuna.exceptions.UpdateFinishedTrialError:  # only another process finishes a trial running here
            self.failed_elsewhere = trial.number
            raise

    def _run(self, trial: Any) -> float:
        import optuna

        from .recipe import train

        drawn = draw(trial, self.search, self.config.seed)
        settings = ", ".join(f"{k}={short(v)}" for k, v in drawn.items())
        trial.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}")  # who ran it, in a shared study
        same = _same_settings(trial, drawn)
        if same is not None:
            # Training is seeded, so the same settings give the same run: its result is taken, not trained twice
            # (a search of few choices, e.g. lora_r=4,8, drew a finished trial's settings again).
            trial.set_user_attr("same_as", same.number)
            self.log(f"Trial {trial.number}: {settings}, as trial {same.number}: {self.metric} {same.value:.4f}, "
                     "not trained again")  # fmt: skip
            return float(same.value)
        run_dir = self.folder / TRIALS_DIR / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        self.log(f"Trial {trial.number}: {settings}")
        # --folds would multiply every trial by K; a trial is scored on the evaluation split, as tune compares them.
        # The example tables before and after training, two a trial, buried the leaderboard; best_config.yaml keeps
        # the examples given, so `train --config` shows them for the run chosen.
        values = {**self.config.model_dump(), **drawn, "output_dir": str(run_dir), "overwrite": True, "resume": False,
                  "folds": None, "examples": []}  # fmt: skip
        reporter = _EpochReporter(trial, self.metric)
        result = train(TrainConfig(**values), log=_indented(self.log), callbacks=[reporter], step_lines=False)
        if _state(trial.study, trial.number) != "RUNNING":
            raise optuna.exceptions.UpdateFinishedTrialError(f"trial {trial.number} was finished elsewhere")
        if reporter.pruned:
            self.log(f"Trial {trial.number} pruned after epoch {reporter.last_epoch:g}")
            raise optuna.TrialPruned()
        final = result.metrics.final
        intervals, name = final.get("intervals") or {}, result.space.problem.headline_of(final)[0]
        if name in intervals:  # the trial's first headline score with its 95 % interval, for the leaderboard
            trial.set_user_attr("interval", [name, float(final[name]), *map(float, intervals[name])])
        value = float(final[self.metric])
        if math.isnan(value):
            raise ValueError(f"trial {trial.number} gave {self.metric} = nan")
        self.log(f"Trial {trial.number}: {self.metric} {value:.4f}")
        return value


def _same_settings(trial: Any, drawn: dict[str, Any]) -> Any:
    """A finished trial of the study with exactly these settings, if any (a pruned one is not: its result was
    decided by the trials before it)."""
    import optuna

    done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return next((t for t in done if t.params == drawn and t.value is not None), None)


class _EpochReporter(TrainerCallback):
    """Reports each evaluation to Optuna and stops the training the pruner rejects."""

    def __init__(self, trial: Any, metric: str):
        self.trial, self.key = trial, f"eval_{metric}"
        self.pruned, self.last_epoch = False, 0.0

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **_: Any) -> None:
        if not metrics or self.key not in metrics:
            return
        self.last_epoch = float(state.epoch or 0)
        self.trial.report(float(metrics[self.key]), step=max(1, round(self.last_epoch)))
        if self.trial.should_prune():
            self.pruned = True
            control.should_training_stop = True


def _indented(log: Log) -> Log:
    return lambda message: log("    " + str(message).replace("\n", "\n    "))


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("tune needs Optuna: pip install 'lora-sentiment[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _storage(optuna: Any, url: str | None, folder: Path) -> Any:
    """The study's database: an SQLite file in the output folder unless --storage names one. A heartbeat marks
    trials of a process that died as failed, and each is retried once, so an interrupted study resumes."""
    url = url or f"sqlite:///{(folder / STUDY_FILE).absolute()}"
    sqlite = url.startswith("sqlite")
    # SQLite's own 5 s wait for another process's write lock is short on a loaded machine, and a heartbeat
    # write that gives up ends the heartbeat thread, so a live trial goes stale GRACE_SECONDS later.
    # isolation_level=None: the driver's own lazy BEGIN is replaced by _begin_immediate's, below.
    engine = {"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else None
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.8; its warning says nothing
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # to a user of `tune`
            storage = optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors vary by database
        raise UserError(f"cannot open the study database {url}: {str(exc).splitlines()[0]} (check --storage)") from None
    if sqlite:
        import sqlalchemy

        sqlalchemy.event.listen(storage.engine, "begin", _begin_immediate)
    return storage


def _begin_immediate(connection: Any) -> None:
    """Optuna takes a waiting trial by reading that it waits and marking it running in one transaction, with a
    SELECT ... FOR UPDATE that SQLite ignores; and Python's sqlite3 begins a transaction only at the first write.
    So two processes could both read "waiting" and both run one trial into one folder (measured: 9 and 18 of 100
    queued trials taken twice). BEGIN IMMEDIATE takes SQLite's write lock as every transaction starts, making the
    read and the write one step (SQLAlchemy's recipe for pysqlite transactions)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _objective_metric(config: TrainConfig, log: Log) -> str:
    from ..data.splits import load_labeled_data

    if config.metric_for_best_model != "auto":
        return config.metric_for_best_model
    data = load_labeled_data(config, log=lambda _: None)
    return data.space.problem.best_metric


def _with_sized_settings(config: TrainConfig) -> TrainConfig:
    """`config` with its `auto` learning rate and evaluation share as a run on this data decides them, so that
    trial 0 searches from what `train` would run."""
    from ..data.splits import load_labeled_data

    return config.model_copy(update=load_labeled_data(config, log=lambda _: None).sized)


def _finished_states(optuna: Any) -> tuple:
    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _finished(study: Any) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=_finished_states(optuna)))


def _check_same_search(study: Any, config: TrainConfig, search: list[Dimension], metric: str) -> None:
    """A study continues only with the settings it started with: the same objective, space and fixed settings."""
    recipe = {"metric": metric, "search": [d.__dict__ for d in search], "fixed": fixed_settings(config)}
    recipe = yaml.safe_load(yaml.safe_dump(recipe))  # tuples and lists compare alike once stored
    stored = study.user_attrs.get("recipe")
    if stored is None:
        study.set_user_attr("recipe", recipe)
    elif stored != recipe:
        changed = [k for k in recipe if stored.get(k) != recipe[k]]
        raise UserError(
            f"the study in this --output-dir was started with other settings ({', '.join(changed)} differ); "
            "run it with the same flags, or choose another --output-dir or --study-name"
        )
