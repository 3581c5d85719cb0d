"""--report-to mlflow / wandb: what a run logged, read back the way users read it."""

import json
import time

import pytest

from lora_sentiment import TrainConfig, train

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra")  # installed by .ci/run: these tests run in CI


@pytest.fixture
def config(tmp_path, tiny_distilbert, small_csv, monkeypatch) -> TrainConfig:
    monkeypatch.chdir(tmp_path)  # MLflow's artifact store and W&B's offline runs go to the working directory
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_API_KEY", "WANDB_MODE", "WANDB_RUN_GROUP"):
        monkeypatch.delenv(name, raising=False)
    return TrainConfig(
        model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "run"), max_length=32, epochs=2,
        batch_size=16, precision="fp32", examples=["Good."],
    )  # fmt: skip


@pytest.mark.slow
def test_mlflow_holds_the_settings_the_curves_the_final_metrics_and_the_run(config, tmp_path):
    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    result = train(config.model_copy(update={"report_to": ["mlflow"], "mlflow_uri": uri}), log=lambda _: None)
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lora-sentiment").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["config.lora_r"] == "8" and run.data.params["config.max_length"] == "32"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "eval_loss")] == pytest.approx(
        [h["loss"] for h in result.metrics.history]
    )  # one point per epoch
    assert run.data.metrics["final_accuracy"] == pytest.approx(result.metrics.final["accuracy"])
    assert run.data.metrics["baseline_accuracy"] == pytest.approx(result.metrics.baseline["accuracy"])
    files = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/README.md", "run/adapter_model.safetensors", "run/learning_curves.png"} <= files


def _wandb_records(path):
    """The records of an offline .wandb file: a LevelDB log (32 KiB blocks of 7-byte-framed chunks) of
    wandb's protobuf Records, after a 7-byte ':W&B' header."""
    from wandb.proto import wandb_internal_pb2

    data, block, at, chunks = path.read_bytes(), 32768, 7, b""
    while at + 7 <= len(data):
        if block - at % block < 7:  # too little room left in this block for a header: the rest is padding
            at += block - at % block
            continue
        length, kind = int.from_bytes(data[at + 4 : at + 6], "little"), data[at + 6]
        chunks += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def _finished_records(path, wait=60.0):
    """The records once wandb's service has written the run's exit record: `wandb.finish()` returns
    before that service has flushed the file (2 of 5 reads here found the final summary missing)."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + wait
    while True:
        try:
            records = list(_wandb_records(path))
        except DecodeError:  # read while the service was writing a record
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def _items(items):
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}


@pytest.mark.slow
def test_wandb_offline_run_files_hold_the_metrics(config, tmp_path):
    pytest.importorskip("wandb", reason="the wandb extra")
    result = train(config.model_copy(update={"report_to": ["wandb"]}), log=lambda _: None)
    (path,) = (tmp_path / "wandb").glob("offline-run-*/*.wandb")
    summary, history, settings = {}, [], {}
    for record in _finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            summary.update(_items(record.summary.update))
        elif kind == "history":
            history.append(_items(record.history.item))
        elif kind == "config":
            settings.update(_items(record.config.update))
    assert summary["final_accuracy"] == pytest.approx(result.metrics.final["accuracy"])
    assert summary["baseline_accuracy"] == pytest.approx(result.metrics.baseline["accuracy"])
    losses = [h["eval/loss"] for h in history if "eval/loss" in h]
    assert losses == pytest.approx([h["loss"] for h in result.metrics.history])  # one point per epoch
    assert settings["lora_sentiment"]["lora_r"] == 8


@pytest.mark.slow
def test_tune_nests_each_trial_under_the_study_run(config, tmp_path):
    pytest.importorskip("optuna", reason="the tune extra")
    from lora_sentiment.training.search_space import parse_search
    from lora_sentiment.training.tuning import tune

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    study = config.model_copy(update={"report_to": ["mlflow"], "mlflow_uri": uri, "epochs": 1.0})
    tune(study, parse_search(["learning_rate=1e-4:3e-3:log"]), trials=2, log=lambda _: None)
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("lora-sentiment").experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "lora-sentiment"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in trials) == ["trial-0000", "trial-0001"]
