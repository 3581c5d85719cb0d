"""What a `tune` study leaves: the leaderboard (printed and `leaderboard.csv`), `best_config.yaml` that `train
--config` reproduces, the best trial against trial 0 (the settings given) by a paired comparison, the TF-IDF line
to beat, and Optuna's plots."""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import TrainConfig
from ..errors import UserError
from ..problems.metrics import LOWER_IS_BETTER
from ..runs.run import TRIALS_DIR

Log = Callable[[str], None]

LEADERBOARD_FILE = "leaderboard.csv"
BEST_CONFIG_FILE = "best_config.yaml"


@dataclass
class TuneResult:
    output_dir: Path
    best_config: Path
    leaderboard: list[dict[str, Any]]
    metric: str
    best_value: float | None
    baseline: tuple[str, float, float] | None  # (metric, TF-IDF baseline, best trial) on the same texts
    against_first: dict[str, Any] | None = None  # the best trial against trial 0 (the settings given), paired


def fixed_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings every trial shares: what a study is continued only with, and best_config.yaml's base."""
    return config.model_dump(exclude={"output_dir", "overwrite", "resume", "report_to", "mlflow_uri"}, mode="json")


def short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def finish(study: Any, config: TrainConfig, metric: str, folder: Path, keep: str, log: Log) -> TuneResult:
    board = leaderboard(study, metric)
    _write_csv(folder / LEADERBOARD_FILE, board)
    complete = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if not complete:
        raise UserError(f"no trial of the study finished; see the trials' logs under {folder / TRIALS_DIR}")
    best = _trained(study, study.best_trial)
    best_config = folder / BEST_CONFIG_FILE
    values = {**fixed_settings(config), **best.params, "output_dir": str(folder / "best")}
    best_config.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    baseline = _baseline(Path(best.user_attrs["run_dir"]), metric)
    log(format_leaderboard(board, baseline))
    log(f"Best: trial {best.number}, {metric} {best.value:.4f}; reproduce: lora-sentiment train --config {best_config}")
    against_first = _best_against_first(study, best, log)
    _plots(study, folder, log)
    if keep == "best":
        _drop_other_runs(study, best.number)
    return TuneResult(folder, best_config, board, metric, best.value, baseline, against_first)


def _trained(study: Any, trial: Any) -> Any:
    """The trial whose run holds `trial`'s result: itself, or the earlier trial with its settings (same_as)."""
    same = trial.user_attrs.get("same_as")
    return trial if same is None else next(t for t in study.trials if t.number == same)


def _best_against_first(study: Any, best: Any, log: Log) -> dict[str, Any] | None:
    """Is the search's best beyond the noise of the settings given (trial 0)? Both runs predict the same
    evaluation texts and are compared by the paired bootstrap (problems/intervals.py)."""
    first = next((t for t in study.trials if t.number == 0 and t.state.name == "COMPLETE"), None)
    if first is None or best.number == 0:
        return None
    from ..data.splits import load_labeled_data
    from ..inference.classifier import load_classifier
    from ..problems.intervals import comparison_text, paired_comparison
    from ..runs.run import Run

    try:
        runs = [Run.open(t.user_attrs["run_dir"]) for t in (best, first)]
    except (UserError, KeyError):
        return None  # a run removed by another process's --keep best: nothing to compare
    data = load_labeled_data(runs[0].config, log=lambda _: None)
    texts, labels = list(data.eval["text"]), np.asarray(data.eval["label"])
    scores = [load_classifier(run.path, engine="torch").predict_scores(texts) for run in runs]
    config = runs[0].config  # both trials' thresholds were tuned on these texts, unless --threshold fixed them
    tuned_on = config.seed if config.threshold is None else None
    comparison = paired_comparison(runs[0].space, labels, scores[0], scores[1], runs[1].space, tuned_on=tuned_on)
    if comparison is not None:
        log(comparison_text(comparison, f"The best trial ({best.number})", "trial 0 (the settings given)"))
        finished = sum(t.state.name == "COMPLETE" and "same_as" not in t.user_attrs for t in study.trials)
        # The best of several on these texts is ahead partly by luck (the winner's curse); the interval is of one
        # comparison, not of a choice among many.
        log(f"It was chosen as the best of {finished} finished trials on these same texts, so its lead here is "
            "optimistic: before relying on it, score both settings on texts the search did not see.")  # fmt: skip
    return comparison


def leaderboard(study: Any, metric: str) -> list[dict[str, Any]]:
    """Every trial, best first: its number, state, objective, last reported epoch, seconds and settings."""
    rows, states = [], {}
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        last = max(t.intermediate_values) if t.intermediate_values else None
        value = t.value if t.value is not None else (t.intermediate_values.get(last) if last else None)
        interval = _trained(study, t).user_attrs.get("interval")
        shown = f"{interval[0]} {interval[1]:.4f} ({interval[2]:.4f}-{interval[3]:.4f})" if interval else None
        same = t.user_attrs.get("same_as")
        states[t.number] = t.state.name.lower()
        rows.append({"trial": t.number, "state": states[t.number] if same is None else f"same as {same}",
                     metric: value, "interval": shown, "epochs_run": last,
                     "seconds": round(seconds, 1) if seconds else None, **t.params})  # fmt: skip
    lower = metric in LOWER_IS_BETTER
    order = {"complete": 0, "pruned": 1}
    return sorted(rows, key=lambda r: (order.get(states[r["trial"]], 2), _rank(r[metric], lower), r["trial"]))


def _rank(value: float | None, lower: bool) -> float:
    if value is None or math.isnan(value):
        return math.inf
    return value if lower else -value


def format_leaderboard(board: list[dict[str, Any]], baseline: tuple[str, float, float] | None) -> str:
    """The leaderboard as text; each finished trial's headline score with its 95 % interval (`interval`)."""
    columns = list(dict.fromkeys(k for row in board for k in row))
    cells = [[short(row.get(c)) if row.get(c) is not None else "-" for c in columns] for row in board]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths))  # noqa: E731
    text = ["Leaderboard:", line(columns), *(line(r) for r in cells)]
    if baseline is not None:
        name, theirs, ours = baseline
        text.append(f"TF-IDF baseline on the same evaluation texts: {name} {theirs:.4f} (best trial: {ours:.4f})")
    return "\n".join(text)


def _write_csv(path: Path, board: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in board for k in row))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(board)


def _baseline(run_dir: Path, metric: str) -> tuple[str, float, float] | None:
    """(metric, the TF-IDF baseline's score, the best trial's score) on the same evaluation texts: the
    objective where the baseline has it (it has no loss), else the task's headline metric."""
    from ..runs.run import Run

    try:
        run = Run.open(run_dir)
        metrics = run.metrics
    except (UserError, OSError):
        return None
    baseline, final = metrics.baseline or {}, metrics.final
    for name in (metric, *run.space.problem.headline_of(final), "rmse"):  # the headline: skewed, macro-F1 first
        ours = getattr(final, name, None)
        if isinstance(baseline.get(name), (int, float)) and isinstance(ours, (int, float)):
            return name, float(baseline[name]), float(ours)
    return None


def _plots(study: Any, folder: Path, log: Log) -> None:
    """optimization_history.png and, with two finished trials or more, param_importances.png."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
        for name, draw in (("optimization_history", views.plot_optimization_history),
                           ("param_importances", views.plot_param_importances)):  # fmt: skip
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as exc:  # importances need two finished trials with varied settings
                log(f"No {name.replace('_', ' ')} plot: {str(exc).splitlines()[0]}")
                continue
            axes.figure.savefig(folder / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(axes.figure)


def _drop_other_runs(study: Any, best: int) -> None:
    """--keep best: the runs of finished trials other than the best go (a trial still running elsewhere stays)."""
    for t in study.trials:
        run_dir = t.user_attrs.get("run_dir")
        if t.number != best and run_dir and t.state.name in ("COMPLETE", "PRUNED", "FAIL"):
            shutil.rmtree(run_dir, ignore_errors=True)
