"""Experiment tracking (`--report-to mlflow wandb tensorboard`): one tracked run per training run.

The Trainer's own integrations (MLflowCallback, WandbCallback, TensorBoardCallback) log the training and
evaluation curves; this module opens the tracked run before training, so that it is ours to finish, and
afterwards adds what only the finished run knows: the resolved settings, the kept epoch's metrics beside the
TF-IDF baseline's, and the run's files (plots, model card, adapter). MLflow logs to MLFLOW_TRACKING_URI or
--mlflow-uri, else to an SQLite file in the working directory; W&B runs offline when no API key is set."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..config import TrainConfig
from ..errors import UserError

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"
EXPERIMENT = "lora-sentiment"


WANDB_MODES = ("online", "offline", "disabled", "dryrun")


def check_trackers(config: TrainConfig) -> None:
    """Before anything runs (a failure here writes nothing): every --report-to target has its package, MLflow's
    store is one MLflow accepts, W&B's mode is one it knows."""
    for target in config.report_to:
        if importlib.util.find_spec(EXTRAS[target]) is None:
            raise UserError(f"--report-to {target} needs the {target} package: pip install 'lora-sentiment[{target}]'")
    if "mlflow" in config.report_to:
        _check_mlflow_store(config)
    mode = os.environ.get("WANDB_MODE")
    if "wandb" in config.report_to and mode is not None and mode.strip().lower() not in WANDB_MODES:
        raise UserError(
            f"WANDB_MODE={mode!r} is not a W&B mode; set it to one of {', '.join(WANDB_MODES)}, or unset it"
        )


def _check_mlflow_store(config: TrainConfig) -> None:
    """MLflow 3 refuses a plain folder (file store) unless MLFLOW_ALLOW_FILE_STORE is set, and an SQLite file
    needs its folder: found here, not after the model has loaded and the first epoch has started."""
    uri = mlflow_uri(config)
    source = (
        "--mlflow-uri" if config.mlflow_uri else "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else ""
    )
    scheme = urlparse(uri).scheme.lower()
    allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("1", "true", "yes")
    if scheme in ("", "file") and not allowed:
        raise UserError(
            f"{source} {uri} is a file store, which MLflow 3 refuses: use a database, e.g. --mlflow-uri "
            "sqlite:///mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true to keep the folder"
        )
    if scheme == "sqlite":
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().parent
        if not folder.is_dir():
            raise UserError(f"{source or 'MLflow'} {uri}: the folder {folder} does not exist; create it first")


def mlflow_uri(config: TrainConfig) -> str:
    return config.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI


class Trackers:
    """The tracked runs of one training run: callbacks for the Trainer, and `finish` once the run is saved."""

    def __init__(self, config: TrainConfig, folders: tuple[Path, Path]):
        self.config = config
        self.tensorboard_dir, self.run_dir = folders  # where TensorBoard writes during training; the run
        self.callbacks: list[Any] = []
        self.mlflow: Any = None
        self.wandb: Any = None

    def start(self) -> None:
        targets = self.config.report_to
        if "tensorboard" in targets:
            self.callbacks.append(tensorboard_callback(self.tensorboard_dir))
        if "mlflow" in targets:
            self._start_mlflow()
        if "wandb" in targets:
            self._start_wandb()

    def _start_mlflow(self) -> None:
        import mlflow
        from transformers.integrations import MLflowCallback

        mlflow.set_tracking_uri(mlflow_uri(self.config))
        if mlflow.active_run() is None:  # under `tune`, the study's run is active: each trial nests in it
            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
        self.mlflow = mlflow.start_run(run_name=self.run_dir.name, nested=mlflow.active_run() is not None)
        self.callbacks.append(MLflowCallback())  # logs into the active run and leaves it open for us

    def _start_wandb(self) -> None:
        import wandb
        from transformers.integrations import WandbCallback

        offline = not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"))
        self.wandb = wandb.init(
            project=os.environ.get("WANDB_PROJECT", EXPERIMENT), name=self.run_dir.name,
            group=os.environ.get("WANDB_RUN_GROUP"), mode="offline" if offline else None,
            config={"lora_sentiment": self.config.model_dump(mode="json")}, reinit="finish_previous",
        )  # fmt: skip
        self.callbacks.append(WandbCallback())

    def finish(self, resolved: TrainConfig, final: dict[str, Any], baseline: dict[str, Any] | None, ok: bool) -> None:
        numbers = {f"final_{k}": v for k, v in _numbers(final).items()}
        numbers |= {f"baseline_{k}": v for k, v in _numbers(baseline or {}).items()}
        if self.mlflow is not None:
            import mlflow

            if ok:
                # Prefixed: the Trainer's callback already logged its own arguments and the model's config
                # (max_length there is the generation default), and MLflow refuses to change a param.
                mlflow.log_params({f"config.{k}": v for k, v in _flat(resolved.model_dump(mode="json")).items()})
                mlflow.log_metrics(numbers)
                mlflow.log_artifacts(str(self.run_dir), artifact_path="run")
            mlflow.end_run(status="FINISHED" if ok else "FAILED")
        if self.wandb is not None:
            if ok:
                self.wandb.config.update({"lora_sentiment": resolved.model_dump(mode="json")}, allow_val_change=True)
                self.wandb.summary.update(numbers)
            self.wandb.finish(exit_code=0 if ok else 1)


@contextmanager
def tracked(config: TrainConfig, folders: tuple[Path, Path], main_process: bool) -> Iterator[Trackers]:
    """Trackers started for the rank that reports; a failure inside ends their runs as failed."""
    trackers = Trackers(config, folders)
    if main_process:
        trackers.start()
    try:
        yield trackers
    except BaseException:
        trackers.finish(config, {}, None, ok=False)
        raise


def _flat(values: dict[str, Any]) -> dict[str, str]:
    """MLflow params are strings of at most 6000 characters: lists joined, None as 'none'."""
    flat = {}
    for key, value in values.items():
        text = ",".join(map(str, value)) if isinstance(value, list) else "none" if value is None else str(value)
        flat[key] = text[:6000]
    return flat


def _numbers(scores: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@contextmanager
def study_run(config: TrainConfig, study_name: str) -> Iterator[None]:
    """Under `tune`: an MLflow run for the study, in which each trial's run nests, and a W&B group."""
    if "wandb" in config.report_to:
        os.environ.setdefault("WANDB_RUN_GROUP", study_name)
    if "mlflow" not in config.report_to:
        yield
        return
    import mlflow

    mlflow.set_tracking_uri(mlflow_uri(config))
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT))
    with mlflow.start_run(run_name=study_name):
        yield


def tensorboard_callback(log_dir: Path) -> Any:
    """Given its own writer, the callback logs into the run directory (not the checkpoint dir, which is deleted)."""
    from torch.utils.tensorboard import SummaryWriter  # only with --report-to tensorboard (an optional extra)
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))
