"""run.py: opening, reading and writing a run directory, and the workspace a run is trained in."""

import json

import pytest

from lora_sentiment.config import TrainConfig
from lora_sentiment.errors import UserError
from lora_sentiment.runs.run import (
    LABELS_FILE,
    METRICS_FILE,
    RESUME_CONFIG_FILE,
    RUN_CONFIG_FILE,
    EpochRecord,
    Run,
    RunMetrics,
    RunWorkspace,
    latest_checkpoint,
)


def test_a_finished_run_opens_with_typed_metrics(trained_run):
    run = Run.open(trained_run)
    assert run.label_names == ["Negative", "Positive"]
    assert run.config.max_length == 64 and run.config.lora_targets == ["q_lin", "v_lin"]
    metrics = run.metrics
    assert isinstance(metrics.history[0], EpochRecord) and [row.epoch for row in metrics.history] == [1.0, 2.0]
    assert 0 <= metrics.final.accuracy <= 1 and metrics.final.samples == sum(map(sum, metrics.final.confusion_matrix))
    # Still readable the way the Python API handed it out before the record was typed.
    assert metrics["final"]["accuracy"] == metrics.final.accuracy and "roc_auc" in metrics["final"]
    assert [r.text for r in metrics.examples.before] == ["A wonderful, moving film.", "Dull and far too long."]


def test_metrics_json_round_trips_with_the_keys_it_always_had(trained_run):
    raw = json.loads((trained_run / METRICS_FILE).read_text())
    assert set(raw) == {"final", "history", "train", "examples", "baseline", "comparison", "overlap", "log_history"}
    expected = {
        "accuracy",
        "f1",
        "f1_macro",
        "precision",
        "recall",
        "roc_auc",
        "confusion_matrix",
        "per_label",
        "calibrated_loss",
    }
    assert set(raw["final"]) == expected | {"loss", "epoch", "samples", "intervals", "calibration", "risk_coverage"}
    every = {"accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc"}
    assert set(raw["final"]["intervals"]) == set(raw["baseline"]["intervals"]) == every
    low, high = raw["final"]["intervals"]["accuracy"]
    assert low <= raw["final"]["accuracy"] <= high
    comparison = raw["comparison"]
    assert comparison["metric"] == "accuracy" and comparison["texts"] == raw["final"]["samples"]
    assert comparison["difference"] == pytest.approx(raw["final"]["accuracy"] - raw["baseline"]["accuracy"])
    assert set(raw["final"]["per_label"]) == {"Negative", "Positive"}
    assert set(raw["final"]["per_label"]["Positive"]) == {"precision", "recall", "f1", "support"}
    again = json.loads(RunMetrics.model_validate(raw).to_json())
    assert again == raw


def test_metrics_json_writes_numpy_scalars_as_the_values_they_hold():
    import numpy as np

    comparison = {"better": np.bool_(True), "texts": np.int64(3), "difference": np.float32(0.5)}
    metrics = RunMetrics(final={"samples": 3}, comparison=comparison)
    assert json.loads(metrics.to_json())["comparison"] == {"better": True, "texts": 3, "difference": 0.5}
    with pytest.raises(TypeError, match="cannot hold"):
        RunMetrics(final={"samples": 3}, comparison={"texts": np.arange(2)}).to_json()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run: (run / LABELS_FILE).unlink(), "labels.json is missing"),
        (lambda run: (run / LABELS_FILE).write_text("{not json"), "damaged run"),
        (lambda run: (run / RUN_CONFIG_FILE).write_text("lora_r: -3\n"), "damaged run"),
        (lambda run: (run / "adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
    ],
)
def test_a_damaged_run_is_one_user_error(tmp_path, trained_run, damage, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    damage(run)
    with pytest.raises(UserError, match=message):
        Run.open(run)


def test_a_run_whose_local_base_model_is_gone_says_so_before_loading(tmp_path, trained_run, capsys):
    """A run copied to a machine without its base model's folder: the loader took the path for a hub name and said
    to pass --model, which predict, evaluate, serve and export do not have."""
    import shutil

    from lora_sentiment import open_predictor
    from lora_sentiment.cli import main

    moved = tmp_path / "moved"
    shutil.copytree(trained_run, moved)
    config = moved / "training_config.yaml"
    config.write_text("\n".join(
        "model: /nowhere/base-model" if line.startswith("model:") else line
        for line in config.read_text().splitlines()
    ) + "\n")  # fmt: skip
    needle = f"{moved} was trained from the base model in /nowhere/base-model, which is not on this machine"
    for argv in (["predict", str(moved), "--text", "Fine."], ["export", str(moved), str(tmp_path / "out")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err and "put that model there" in err, err
    with pytest.raises(UserError, match=needle):
        open_predictor(moved, engine="torch").predict(["Fine."])
    assert not (tmp_path / "out").exists()
    Run.open(trained_run).check_base()  # a base that is there (a local folder too) passes


def test_a_tune_or_audit_folder_given_as_a_run_is_named(tmp_path, trained_run, capsys):
    """`report TUNE_DIR` and `predict AUDIT_DIR` said only that training_config.yaml was missing."""
    import shutil

    from lora_sentiment.cli import main

    study = tmp_path / "tune"
    (study / "trials").mkdir(parents=True)
    (study / "study.db").write_bytes(b"")
    shutil.copytree(trained_run, study / "trials" / "trial-0003")
    with pytest.raises(UserError, match=r"is a tune study, not a run: its best run is .*trial-0003"):
        Run.open(study)
    shutil.copytree(trained_run, study / "trials" / "trial-0007")  # --keep all: which one is the user's to say
    with pytest.raises(UserError, match=r"its trials' runs are in .*trials \(see .*leaderboard.csv\)"):
        Run.open(study)
    audited = tmp_path / "audit"
    audited.mkdir()
    (audited / "audit.json").write_text("{}")
    assert main(["predict", str(audited), "--text", "Fine."]) == 2
    assert "is an audit, not a run: its findings are" in capsys.readouterr().err
    exported = tmp_path / "export"  # report and export need the run an export came from ("train again", it said)
    assert main(["export", str(trained_run), str(exported), "--format", "onnx"]) == 0
    capsys.readouterr()
    for argv in (["report", str(exported)], ["export", str(exported), str(tmp_path / "again")]):
        assert main(argv) == 2
        assert (
            f"{exported} is an export (onnx), not a run: give the run it was exported from" in capsys.readouterr().err
        )


def test_damaged_metrics_are_one_user_error(tmp_path, trained_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / METRICS_FILE).write_text('{"history": []}')
    with pytest.raises(UserError, match="metrics.json is damaged"):
        _ = Run.open(run).metrics
    with pytest.raises(UserError, match="not found"):
        Run.open(tmp_path / "nowhere")


def _fake_checkpoint(workspace: RunWorkspace, config: TrainConfig, step: int = 6) -> None:
    checkpoint = workspace.checkpoints / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"epoch": 1.0}))
    (workspace.checkpoints / RESUME_CONFIG_FILE).write_text(config.to_yaml())


def test_workspace_refuses_what_must_not_be_overwritten(tmp_path):
    out = tmp_path / "run"
    workspace = RunWorkspace(out)
    config = TrainConfig(output_dir=str(out))
    assert workspace.prepare(config) is None  # nothing there: start fresh
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--overwrite"):
        workspace.prepare(config)
    assert workspace.prepare(config.model_copy(update={"overwrite": True})) is None

    _fake_checkpoint(workspace, config)
    with pytest.raises(UserError, match=r"interrupted run .*, in .*\.run\.checkpoints\); pass --resume"):
        workspace.prepare(config)  # the folder named: it is hidden, and outlives deleting --output-dir
    resumed = config.model_copy(update={"resume": True, "overwrite": True})
    assert workspace.prepare(resumed) == latest_checkpoint(workspace.checkpoints)
    with pytest.raises(UserError, match=r"--learning-rate \(was 'auto', now 0.01\)"):
        workspace.prepare(resumed.model_copy(update={"learning_rate": 0.01}))
    # a checkpoint written before --pooling existed trained the first-token head: only that resumes it
    saved = workspace.checkpoints / RESUME_CONFIG_FILE
    saved.write_text("".join(line for line in saved.read_text().splitlines(True) if not line.startswith("pooling:")))
    with pytest.raises(UserError, match=r"--pooling \(was 'first-token', now 'auto'\)"):
        workspace.prepare(resumed)
    assert workspace.prepare(resumed.model_copy(update={"pooling": "first-token"})) is not None


def test_publish_swaps_in_a_complete_run_or_leaves_the_old_one(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    workspace = RunWorkspace(out)
    workspace.start_fresh(TrainConfig(output_dir=str(out)))

    def broken(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        workspace.publish(broken)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"] and workspace.checkpoints.is_dir()

    workspace.publish(lambda folder: (folder / "new.txt").write_text("new run"))
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert not workspace.checkpoints.exists() and not (tmp_path / ".run.partial").exists()
