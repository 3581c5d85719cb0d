"""Data-parallel training for real: torchrun with 2 CPU processes (gloo) against 1 process, same effective batch."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from lora_sentiment import TrainConfig, load_classifier, train

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def split_240_200(tmp_path_factory, imdb_frames):
    train_frame, validation = imdb_frames
    folder = tmp_path_factory.mktemp("ddp-data")
    rows = pd.concat(
        [train_frame[train_frame.label == 0].head(120), train_frame[train_frame.label == 1].head(120)]
    ).sample(frac=1, random_state=0)
    rows[["text", "label"]].to_csv(folder / "train.csv", index=False)
    held_out = pd.concat([validation[validation.label == 0].head(100), validation[validation.label == 1].head(100)])
    held_out[["text", "label"]].to_csv(folder / "eval.csv", index=False)
    return folder / "train.csv", folder / "eval.csv"


@pytest.mark.slow
def test_two_ranks_match_one_rank_and_only_rank_0_writes(tmp_path, minilm_path, split_240_200):
    """1 process x batch 16 against 2 processes x batch 8. Random batch order (no length grouping, whose
    buckets depend on the per-process batch size) and no LoRA dropout (each rank draws its own masks) make
    the two runs the same computation up to float summation order: accuracy must agree within 2 points."""
    train_csv, eval_csv = split_240_200
    common = [
        "--model",
        minilm_path,
        "--data",
        str(train_csv),
        "--eval-data",
        str(eval_csv),
        "--max-length",
        "64",
        "--epochs",
        "2",
        "--no-group-by-length",
        "--lora-dropout",
        "0",
        "--seed",
        "7",
    ]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "lora_sentiment",
            "train",
            *common,
            "--batch-size",
            "16",
            "--output-dir",
            str(tmp_path / "one"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "lora_sentiment",
            "train",
            *common,
            "--batch-size",
            "8",
            "--output-dir",
            str(tmp_path / "two"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert double.returncode == 0, double.stderr[-3000:]

    # One voice: the examples and the summary are printed once, by rank 0, and it says how it ran.
    assert double.stdout.count("Untrained model predictions:") == 1 and double.stdout.count("Saved to") == 1
    assert "Training on 2 processes on cpu (batch size 8 per process)" in double.stdout
    assert double.stderr.count("Seconds: start-up") == 1 and single.stderr.count("Seconds: start-up") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # no leftovers from either rank

    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (
        two["final"]["samples"] == 200 and sum(map(sum, two["final"]["confusion_matrix"])) == 200
    )  # gathered, not per rank
    assert abs(two["final"]["accuracy"] - one["final"]["accuracy"]) <= 0.02
    assert two["final"]["accuracy"] >= 0.6  # it learned
    for a, b in zip(one["history"], two["history"]):
        # eval loss per epoch, averaged over ranks (summed would double it); 2 x 8 and 1 x 16 part ways a little
        assert b["loss"] == pytest.approx(a["loss"], rel=0.1)

    # The adapter saved by the 2-process run loads and predicts like any other run.
    classifier = load_classifier(tmp_path / "two")
    metrics = classifier.evaluate(str(eval_csv))
    assert abs(metrics["accuracy"] - two["final"]["accuracy"]) <= 0.01  # bf16 merged weights vs training-time eval


@pytest.mark.slow
def test_gradient_accumulation_averages_like_a_bigger_batch(tmp_path, tiny_distilbert, small_csv):
    """Batch 8 x 2 accumulation steps is the same optimisation as batch 16: the same eval loss every epoch.

    On whole windows only: 64 training rows, 4 windows of 16. With 76 (this CSV less its carved evaluation split)
    the epoch's last window was 8 + 4 rows, whose two per-batch mean losses the Trainer averages with equal weight,
    where batch 16 takes one mean over 12 rows: a different step, which sometimes moved the eval loss past the
    tolerance (the known flake). Dropout masks and the sampler's order are the same in both runs."""
    common = dict(
        model=tiny_distilbert,
        data=str(small_csv),
        max_train_samples=64,
        max_length=64,
        epochs=2,
        precision="fp32",
        group_by_length=False,
        lora_dropout=0.0,
        warmup_ratio=0.0,
    )
    big = train(TrainConfig(**common, batch_size=16, output_dir=str(tmp_path / "big")), log=lambda _: None)
    accumulated = train(
        TrainConfig(**common, batch_size=8, gradient_accumulation_steps=2, output_dir=str(tmp_path / "acc")),
        log=lambda _: None,
    )
    assert big.metrics["train"]["train_samples"] == 64 and len(big.metrics["history"]) == 2
    for a, b in zip(big.metrics["history"], accumulated.metrics["history"]):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-6)  # summation order alone differs
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_command_data_parallel(tmp_path, tiny_distilbert, small_csv):
    """`accelerate launch --multi_gpu` goes through torch's launcher; without GPUs its ranks use gloo on CPU."""
    accelerate = [sys.executable, "-c", "from accelerate.commands.accelerate_cli import main; main()"]
    result = subprocess.run(
        [
            *accelerate,
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "-m",
            "lora_sentiment",
            "train",
            "--model",
            tiny_distilbert,
            "--data",
            str(small_csv),
            "--output-dir",
            str(tmp_path / "run"),
            "--max-length",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Training on 2 processes on cpu (batch size 8 per process)" in result.stdout
    assert result.stdout.count("Saved to") == 1
    assert load_classifier(tmp_path / "run").predict(["Fine."])[0].label_name in {"Negative", "Positive"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
