"""Crashes: kill -9 mid-training and resume to the same result; kill -9 while saving and lose nothing."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import load_file

from lora_sentiment.cli import main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
CLI = [sys.executable, "-m", "lora_sentiment"]

# Runs the CLI, but the process is SIGKILLed as soon as saving reaches the model card: after the adapter,
# tokenizer, config, labels and metrics are written into the staging folder, before the run is moved into place.
DIE_WHILE_SAVING = """
import os, signal, sys
import lora_sentiment.runs.card as card
card.model_card = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from lora_sentiment.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def reviews_240(tmp_path_factory, imdb_frames) -> Path:
    train, _ = imdb_frames
    rows = pd.concat([train[train.label == 0].head(120), train[train.label == 1].head(120)]).sample(
        frac=1, random_state=0
    )
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows[["text", "label"]].to_csv(path, index=False)
    return path


def _adapter(run: Path) -> dict:
    return load_file(run / "adapter_model.safetensors")


@pytest.mark.slow
def test_kill_9_after_the_first_checkpoint_then_resume_gives_the_uninterrupted_result(
    tmp_path, minilm_path, reviews_240, capsys
):
    """Real pre-trained MiniLM, bf16 where the CPU has it, dropout on: resuming restores weights, optimizer,
    scheduler, RNG and data order, so every per-epoch metric and every adapter weight is exactly equal."""
    args = [
        "train",
        "--model",
        minilm_path,
        "--data",
        str(reviews_240),
        "--max-length",
        "64",
        "--epochs",
        "2",  # the kill lands in the second: one epoch restored, one trained after it
        "--batch-size",
        "8",
    ]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([*args, "--output-dir", str(whole)]) == 0

    process = subprocess.Popen(
        [*CLI, *args, "--output-dir", str(cut)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints = tmp_path / ".cut.checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not cut.exists()
    finished_epochs = len(list(checkpoints.glob("checkpoint-*/trainer_state.json")))
    assert finished_epochs < 2, "the kill came too late to interrupt anything"

    assert main([*args, "--output-dir", str(cut)]) == 2  # never silently discarded or mixed
    assert main([*args, "--output-dir", str(cut), "--resume", "--lora-r", "4"]) == 2  # settings must match
    capsys.readouterr()
    assert main([*args, "--output-dir", str(cut), "--resume"]) == 0
    # The resumed call's profile counts its own evaluations only, not those in the restored history.
    stages = dict(
        part.rsplit(" ", 1) for part in capsys.readouterr().err.split("Seconds: ")[1].split("\n")[0].split(", ")
    )
    assert float(stages["train"]) >= 0 and float(stages["evaluate"]) > 0

    a, b = json.loads((whole / "metrics.json").read_text()), json.loads((cut / "metrics.json").read_text())
    assert b["history"] == a["history"] and b["final"] == a["final"]
    adapter_a, adapter_b = _adapter(whole), _adapter(cut)
    assert adapter_a.keys() == adapter_b.keys() and all((adapter_a[k] == adapter_b[k]).all() for k in adapter_a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "whole"]  # checkpoints and staging are gone


def test_resume_without_an_interrupted_run_is_refused(tmp_path, tiny_distilbert, small_csv, capsys):
    assert (
        main(
            [
                "train",
                "--model",
                tiny_distilbert,
                "--data",
                str(small_csv),
                "--output-dir",
                str(tmp_path / "x"),
                "--resume",
            ]
        )
        == 2
    )
    assert "nothing to resume" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("with_previous_run", [True, False])
def test_kill_9_while_saving_leaves_the_previous_run_or_nothing(
    tmp_path, tiny_distilbert, small_csv, with_previous_run
):
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        tiny_distilbert,
        "--data",
        str(small_csv),
        "--output-dir",
        str(out),
        "--max-length",
        "32",
        "--epochs",
        "2",
        "--precision",
        "fp32",
    ]
    if with_previous_run:
        assert main([*args, "--seed", "1"]) == 0
        previous = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    killed = subprocess.run(
        [sys.executable, "-c", DIE_WHILE_SAVING, *args, "--seed", "2", "--overwrite"],
        env=ENV,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / ".run.partial" / "adapter_model.safetensors").is_file()  # it did die mid-save
    if with_previous_run:
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == previous
    else:
        assert not out.exists()

    # The checkpoints survived the crash: --resume finishes the save without training again.
    assert main([*args, "--seed", "2", "--overwrite", "--resume"]) == 0
    from lora_sentiment import load_classifier

    assert load_classifier(out).predict(["fine"])[0].label_name in {"Negative", "Positive"}
    assert json.loads((out / "metrics.json").read_text())["history"][-1]["epoch"] == 2.0
    if with_previous_run:
        assert (out / "adapter_model.safetensors").read_bytes() != previous["adapter_model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
