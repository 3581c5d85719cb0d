"""The run directory: the one module that knows its files, reads and writes them, and keeps them whole.

A finished run (`Run`) is what `predict`, `evaluate`, `serve`, `report` and `export` open; a run in progress
(`RunWorkspace`) is its future place plus two hidden siblings: `.NAME.checkpoints` (the Trainer's checkpoints
and the settings `--resume` must match) and `.NAME.partial`, where the finished run is assembled before it
is swapped into place, so a run appears complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..atomic import check_writable, claimed, fresh_staging_dir, replace_dir
from ..config import TrainConfig, build_config
from ..errors import UserError, first_line
from ..problems.space import LabelSpace
from . import card
from . import figures as plots
from .records import EpochRecord, ExampleRow, Examples, RunMetrics, Scores, TrainStats
from .seen import SEEN_FILE  # hashes of the texts the run trained and was evaluated on

if TYPE_CHECKING:
    import numpy as np

# The metrics.json records live in records.py; 0.2 imported them from here, so they are re-exported.
__all__ = [
    "ADAPTER_CONFIG_FILE", "ADAPTER_WEIGHTS_FILE", "CARD_FILE", "EXPORT_INFO_FILE", "LABELS_FILE", "METRICS_FILE",
    "RECORD_FILES", "RESUME_CONFIG_FILE", "RUN_CONFIG_FILE", "EpochRecord", "ExampleRow", "Examples", "Run",
    "RunMetrics", "RunWorkspace", "Scores", "TrainStats", "export_format", "find_runs", "is_export",
    "parse_named_runs", "read_metrics", "run_info", "write_run",
]  # fmt: skip

RUN_CONFIG_FILE = "training_config.yaml"  # the resolved config: every setting of the run
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
ADAPTER_CONFIG_FILE = "adapter_config.json"  # written by peft, like the tokenizer files
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
LEARNING_CURVES_FILE = "learning_curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
PER_LABEL_F1_FILE = "per_label_f1.png"
RELIABILITY_FILE = "reliability.png"
RISK_COVERAGE_FILE = "risk_coverage.png"
TENSORBOARD_DIR = "tensorboard"
FIGURES = {  # a problem type's `figure` -> its title and file
    "confusion_matrix": ("Confusion matrix", CONFUSION_MATRIX_FILE),
    "per_label_f1": ("F1 per label", PER_LABEL_F1_FILE),
}
RESUME_CONFIG_FILE = "run_config.yaml"  # in the checkpoints folder: the settings --resume must match
RECORD_FILES = (RUN_CONFIG_FILE, LABELS_FILE, METRICS_FILE, SEEN_FILE)  # what an export carries along
EXPORT_INFO_FILE = "export.json"  # in an export folder: what was exported, and how; tells an export from a run
EXPORT_CARD_FILE = "README.md"  # in an export folder: its model card
# The folders of `tune` and `audit`, named here so a run's opener can say what it was given instead.
STUDY_FILE = "study.db"  # tune's study (SQLite)
TRIALS_DIR = "trials"  # tune's OUT/trials/trial-NNNN: each trial's run
AUDIT_STATE_FILE = "audit.json"  # audit's settings and finished folds


# ------------------------------------------------------------------------------------- metrics.json


def export_format(path: str | Path) -> str | None:
    """The engine of an export folder ("onnx", "openvino"), None for anything else (a run)."""
    info = Path(path) / EXPORT_INFO_FILE
    if not info.is_file():
        return None
    try:
        return str(json.loads(info.read_text(encoding="utf-8")).get("format"))
    except ValueError:
        return "damaged"  # ExportedClassifier.open says what is wrong


def is_export(path: str | Path) -> bool:
    return export_format(path) is not None


# ------------------------------------------------------------------------------------ a finished run


class Run:
    """A finished run directory, validated when opened: `Run.open("runs/x").config`."""

    def __init__(self, path: Path, config: TrainConfig, space: LabelSpace):
        self.path = path
        self.config = config
        self.space = space
        self._metrics: RunMetrics | None = None

    @property
    def label_names(self) -> list[str]:
        return self.space.names

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if path.is_file():  # a data file given where the run goes (predict reviews.csv --text ...)
            raise UserError(f"{path} is a file, not a run directory (pass the --output-dir of a finished training run)")
        if not path.is_dir():
            raise UserError(f"run directory not found: {path} (pass the --output-dir of a finished training run)")
        # Only safetensors weights are loaded: a pickled adapter_model.bin could run code when read.
        for name in (RUN_CONFIG_FILE, LABELS_FILE, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE):
            if not (path / name).is_file():
                raise UserError(_not_a_run(path, name))
        try:
            config = build_config(config_file=path / RUN_CONFIG_FILE)
            space = LabelSpace.from_json(json.loads((path / LABELS_FILE).read_text(encoding="utf-8")))
        except (UserError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} holds a damaged run: {first_line(exc)}") from exc
        return cls(path, config, space)

    def check_base(self) -> None:
        """A run trained from a local folder loads its base model from there (recorded as an absolute path). Gone
        (moved, or the run copied to another machine), the loader took the path for a hub name and said to pass
        --model, a flag prediction does not have."""
        name = self.config.model
        if name.startswith(("/", "~")) and not Path(name).expanduser().is_dir():
            raise UserError(
                f"{self.path} was trained from the base model in {name}, which is not on this machine: put that "
                "model there (a link will do); an export of the run (lora-sentiment export, made where the base "
                "model is) needs no base model"
            )

    @property
    def metrics(self) -> RunMetrics:
        if self._metrics is None:
            self._metrics = read_metrics(self.path)
        return self._metrics

    def draw_plots(self) -> list[Path]:
        return draw_plots(self.path, self.metrics, self.space)

    def copy_records(self, destination: Path, space: LabelSpace | None = None) -> None:
        """The run's config, labels and metrics, beside a model made from it (an export); `space`: the labels
        as that model predicts them, when they differ from the run's (calibration folded into its weights)."""
        for name in RECORD_FILES:
            if (self.path / name).is_file():
                shutil.copy2(self.path / name, destination / name)
        if space is not None and space != self.space:
            (destination / LABELS_FILE).write_text(json.dumps(space.to_json(), indent=2), encoding="utf-8")


def run_info(run_dir: str | Path | Run) -> dict[str, Any]:
    """What /info tells about a run: its recipe and its final evaluation."""
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    config = run.config
    try:
        recorded = run.metrics.final.model_dump(exclude_unset=True)
    except UserError:  # a run without its metrics still serves; /info just has none to show
        recorded = {}
    final = {k: v for k, v in recorded.items() if k != "confusion_matrix"}
    return {
        "run": run.path.name,
        "base_model": config.model,
        "max_length": config.max_length,
        "truncation": config.truncation,
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "targets": config.lora_targets,
        },
        "pooling": config.pooling,
        "metrics": final,
        "headline": list(run.space.problem.headline_of(recorded)),  # the scores to show first (skewed: macro-F1)
        "examples": config.examples,
    }


def file_version(path: Path) -> tuple[int, int]:
    """(modification time, size) of a file, (0, 0) where there is none: what a server compares to notice a run
    retrained or an export made again in place (both are written whole and swapped in)."""
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def find_runs(folder: str | Path) -> dict[str, Path]:
    """The runs under `folder`, by folder name: every visible subfolder that holds a run's files (a damaged one
    too, so its loader can say what is wrong). Hidden ones are runs in progress (.NAME.partial, .NAME.checkpoints)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"--runs-dir {root} is not a folder")
    return {
        path.name: path
        for path in sorted(root.iterdir())
        if path.is_dir() and not path.name.startswith(".") and any((path / n).is_file() for n in _RUN_MARKERS)
    }


_RUN_MARKERS = (RUN_CONFIG_FILE, ADAPTER_CONFIG_FILE)


def parse_named_runs(specs: Sequence[str]) -> dict[str, Path]:
    """`PATH` (named after its folder) or `NAME=PATH`, as the command line gives them; names must be unique."""
    runs: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            name, path = Path(spec).name, spec
        if not name:
            raise UserError(f"{spec!r}: a model name cannot be empty (use NAME=PATH)")
        if name in runs:
            raise UserError(f"two runs are named {name!r}: rename one with NAME=PATH")
        runs[name] = Path(path)
    return runs


def read_metrics(run_dir: Path) -> RunMetrics:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} has no {METRICS_FILE}; pass the --output-dir of a finished training run")
    try:
        return RunMetrics.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise UserError(f"{path} is damaged ({first_line(exc)}); train the run again") from None


def draw_plots(run_dir: Path, metrics: RunMetrics, space: LabelSpace) -> list[Path]:
    """Learning curves, and the kept epoch's errors: a confusion matrix, or per-tag F1 for multi-label."""
    paths = [plots.plot_learning_curves(metrics, run_dir / LEARNING_CURVES_FILE, metric=space.problem.curve_metric)]
    if metrics.final.confusion_matrix:
        matrix = metrics.final.confusion_matrix
        paths.append(plots.plot_confusion_matrix(matrix, space.names, run_dir / CONFUSION_MATRIX_FILE))
    elif space.problem.figure == "per_label_f1" and metrics.final.get("per_label"):
        paths.append(plots.plot_per_label_f1(metrics.final["per_label"], run_dir / PER_LABEL_F1_FILE))
    calibration = metrics.final.get("calibration")
    if calibration and "reliability" in calibration.get("after", {}):
        paths.append(plots.plot_reliability(calibration, run_dir / RELIABILITY_FILE))
    if metrics.final.get("risk_coverage"):
        paths.append(plots.plot_risk_coverage(metrics.final["risk_coverage"], run_dir / RISK_COVERAGE_FILE))
    return paths


def figures(space: LabelSpace) -> dict[str, str]:
    """The plots a run of this problem type has, by title (the card shows them)."""
    shown = {"Learning curves": LEARNING_CURVES_FILE}
    shown.update({title: file for kind, (title, file) in FIGURES.items() if kind == space.problem.figure})
    if space.calibration is not None and space.calibration.temperatures is not None:
        shown["Reliability before and after calibration"] = RELIABILITY_FILE
    if space.problem.confident_in(space):
        shown["Risk-coverage"] = RISK_COVERAGE_FILE
    return shown


def write_run(run_dir: Path, trained: Any, space: LabelSpace, metrics: RunMetrics,
              seen: tuple[np.ndarray, np.ndarray] | None = None) -> None:  # fmt: skip
    """Every file of a run, into `run_dir` (a staging folder: see RunWorkspace.publish). `trained`: the model
    setup of training (model, tokenizer, the resolved config, parameter counts); `seen`: the text_hashes of its
    training and evaluation texts, kept as its record of them (runs/seen.py)."""
    model, tokenizer, config, parameters = trained.model, trained.tokenizer, trained.config, trained.parameters
    # The embedding matrix is saved only when the user targets it: a resized pad row is re-created identically.
    model.save_pretrained(str(run_dir), save_embedding_layers=False)
    tokenizer.save_pretrained(str(run_dir))
    (run_dir / RUN_CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    (run_dir / LABELS_FILE).write_text(json.dumps(space.to_json(), indent=2), encoding="utf-8")
    (run_dir / METRICS_FILE).write_text(metrics.to_json(), encoding="utf-8")
    text = card.model_card(config, space, metrics, parameters, figures=figures(space))
    (run_dir / CARD_FILE).write_text(text, encoding="utf-8")
    draw_plots(run_dir, metrics, space)
    if seen is not None:
        from .seen import write_seen

        write_seen(run_dir, *seen)


# ------------------------------------------------------------------------------------ a run in progress


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete Trainer checkpoint: trainer_state.json is the last file a checkpoint gets."""
    if not checkpoints.is_dir():
        return None
    complete = [
        p
        for p in checkpoints.glob("checkpoint-*")
        if (p / "trainer_state.json").is_file() and p.name.split("-")[-1].isdigit()
    ]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def checkpoint_epoch(checkpoint: Path) -> float:
    return float(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8")).get("epoch") or 0)


class RunWorkspace:
    """Where a run is trained: `final` (its --output-dir) and the hidden checkpoints folder beside it."""

    def __init__(self, final: Path):
        if not Path(os.path.normpath(final.absolute())).name:
            raise UserError(f"--output-dir {final} is the root folder; give the run a folder of its own: runs/imdb")
        self.final = final
        self.checkpoints = final.with_name(f".{final.name}.checkpoints")
        self.tensorboard_dir = self.checkpoints / TENSORBOARD_DIR

    def claimed(self, active: bool = True) -> AbstractContextManager[None]:
        """The output dir kept to this process from the settings checks to the swap (atomic.claimed); under
        torchrun only rank 0, which writes, claims it."""
        return claimed(self.final, "--output-dir") if active else nullcontext()

    def prepare(self, requested: TrainConfig) -> Path | None:
        """The checkpoint to resume from (None: start fresh), after refusing what must not be overwritten.

        Everything here runs before any file is written."""
        checkpoint, saved = self._resume_point(requested)
        # The interrupted run was allowed to replace the output dir; resuming it is, too.
        self._check_output_dir(replace=requested.overwrite or bool(saved and saved.overwrite))
        return checkpoint

    def _resume_point(self, requested: TrainConfig) -> tuple[Path | None, TrainConfig | None]:
        checkpoint = latest_checkpoint(self.checkpoints)
        if not requested.resume:
            if checkpoint is not None and not requested.overwrite:
                raise UserError(
                    f"--output-dir {self.final} has an interrupted run (last checkpoint at epoch "
                    f"{checkpoint_epoch(checkpoint):g}, in {self.checkpoints}); pass --resume to continue it, or "
                    "--overwrite to discard it and start over"
                )
            return None, None
        saved_file = self.checkpoints / RESUME_CONFIG_FILE
        if checkpoint is None or not saved_file.is_file():
            raise UserError(
                f"nothing to resume for --output-dir {self.final}: no checkpoint of an interrupted run "
                "(drop --resume to train anew)"
            )
        saved = build_config(config_file=saved_file)
        if "pooling:" not in saved_file.read_text(encoding="utf-8"):
            # Written before --pooling existed: its head read the first token, and its adapter holds no query.
            saved = saved.model_copy(update={"pooling": "first-token"})
        changed = _changed_settings(saved, requested)
        if changed:
            raise UserError(
                "--resume continues the interrupted run with its own settings, but these differ: "
                + "; ".join(changed)
                + " (give the same flags, or --overwrite without --resume to start over)"
            )
        return checkpoint, saved

    def _check_output_dir(self, *, replace: bool) -> None:
        out = self.final
        if out.exists() and not out.is_dir():
            raise UserError(f"--output-dir {out} is a file; choose a directory path")
        check_writable(out, "--output-dir")
        if out.is_dir() and any(out.iterdir()) and not replace:
            raise UserError(
                f"--output-dir {out} is not empty; pass --overwrite to replace it or choose another --output-dir"
            )

    def start_fresh(self, requested: TrainConfig) -> None:
        """Checkpoints of an older interrupted run (allowed by --overwrite) go; the new run's settings are kept
        for a later --resume to compare with."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.checkpoints.mkdir(parents=True)
        (self.checkpoints / RESUME_CONFIG_FILE).write_text(requested.to_yaml(), encoding="utf-8")

    def publish(self, write: Callable[[Path], None]) -> None:
        """`write(folder)` fills a fresh hidden folder, which is swapped into place. The checkpoints go only
        once the run is in place, so a crash while saving can still be resumed."""
        staging = fresh_staging_dir(self.final)
        write(staging)
        if self.tensorboard_dir.is_dir():
            shutil.copytree(self.tensorboard_dir, staging / TENSORBOARD_DIR)
        replace_dir(staging, self.final)
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def _changed_settings(saved: TrainConfig, now: TrainConfig) -> list[str]:
    ignored = {"overwrite", "resume", "report_to", "mlflow_uri"}  # where it is logged does not change the run
    before, after = saved.model_dump(exclude=ignored), now.model_dump(exclude=ignored)
    return [f"--{k.replace('_', '-')} (was {before[k]!r}, now {after[k]!r})" for k in after if after[k] != before[k]]


def _not_a_run(path: Path, missing: str) -> str:
    """What a folder that is not a finished run is, where another command made it: `report TUNE_DIR` or `predict
    AUDIT_DIR` said only that training_config.yaml was missing."""
    if (path / STUDY_FILE).exists():
        trials = sorted(p for p in (path / TRIALS_DIR).glob("trial-*") if (p / RUN_CONFIG_FILE).is_file())
        kept = f"its trials' runs are in {path / TRIALS_DIR}" if len(trials) != 1 else f"its best run is {trials[0]}"
        return f"{path} is a tune study, not a run: {kept} (see {path / 'leaderboard.csv'})"
    if (path / AUDIT_STATE_FILE).exists():
        return f"{path} is an audit, not a run: its findings are {path / 'summary.json'} and {path / 'issues.csv'}"
    if is_export(path):  # predict, evaluate and serve open it; report and export need the run it came from
        return f"{path} is an export ({export_format(path)}), not a run: give the run it was exported from"
    return f"{path} is not a finished run directory: {missing} is missing (train again or pick another run)"
