"""The settings checks of `train` and `tune`: everything that needs neither the data nor the model (the output
folder and what it holds, trackers and their stores, the study's database, the precision, whether the data
files exist), resolved before any of it is read and before anything is written. A failure here is one line that
names the flag and the fix, and leaves the disk as it was. The CLI runs them first; `train` and `tune` run them
again from Python."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..atomic import check_writable
from ..config import TrainConfig
from ..data.loading import check_source
from ..errors import UserError
from ..hub import check_model_source
from ..options import TuneOptions
from ..runs.run import ADAPTER_CONFIG_FILE, STUDY_FILE, TRIALS_DIR, RunWorkspace
from .tracking import check_trackers


def check_train(config: TrainConfig) -> Path | None:
    """`train`'s settings, checked; the checkpoint to resume from (None: a fresh run)."""
    resume_from = RunWorkspace(Path(config.output_dir).expanduser()).prepare(config)
    _check_common(config)
    return resume_from


def check_tune(config: TrainConfig, options: TuneOptions) -> None:
    """`tune`'s settings, checked: its folder is not a run's, Optuna and the study's database can be opened."""
    if importlib.util.find_spec("optuna") is None:
        raise UserError("tune needs Optuna: pip install 'lora-sentiment[tune]'")
    folder = Path(config.output_dir).expanduser()
    if (folder / ADAPTER_CONFIG_FILE).exists():
        raise UserError(f"--output-dir {folder} holds a training run; give tune a folder of its own")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output-dir {folder} is a file; give tune a folder")
    check_storage_url(options.storage)
    _check_study_folder(folder, options.storage)
    check_writable(folder, "--output-dir", inside=True)
    _check_common(config)


def _check_study_folder(folder: Path, storage: str | None) -> None:
    """A study's folder is empty, or already a study's (its database, its trials' runs): tune writes its database,
    runs, leaderboard and plots into it, which among other files (`--output-dir .`, `/`) would be strewn there."""
    if not folder.is_dir():
        return
    database = sqlite_file(storage) if storage else None
    study = [folder / TRIALS_DIR, folder / STUDY_FILE, *([database] if database is not None else [])]
    if any(folder.iterdir()) and not any(p.exists() and p.resolve().parent == folder.resolve() for p in study):
        raise UserError(
            f"--output-dir {folder} holds other files; give tune an empty folder, or a study's folder to continue it"
        )


def _check_common(config: TrainConfig) -> None:
    """What every training run needs: its trackers, its data files, a precision this machine has."""
    check_trackers(config)
    check_model_source(config.model)
    check_source(config.data, "--data")
    if config.eval_data:
        check_source(config.eval_data, "--eval-data")
    from ..modeling.device import default_device, resolve_precision  # torch: only once the rest is known good

    resolve_precision(config.precision, default_device())


def check_storage_url(url: str | None) -> None:
    """--storage read and its database driver found before any work (SQLAlchemy's URL parser)."""
    if url is None:
        return
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()  # the driver module: a missing one fails here, not at the first trial
    except Exception as exc:  # noqa: BLE001 - ArgumentError, NoSuchModuleError, ImportError of a driver
        raise UserError(
            f"--storage {url} is not a database URL that can be opened here ({str(exc).splitlines()[0]}); e.g. "
            "sqlite:///study.db or postgresql://user@host/db with its driver installed"
        ) from None
    database = sqlite_file(url)
    if database is not None and not database.parent.is_dir():
        raise UserError(f"--storage {url}: the folder {database.parent} does not exist; create it first")
    if database is not None:
        check_writable(database, "--storage")


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for another database or SQLite in memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()
