"""train --folds K: every training text scored by a run that did not see it; the kept model as without it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from lora_sentiment.cli import main
from lora_sentiment.config import TrainConfig
from lora_sentiment.errors import UserError
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training.cross_fitting import check_fold_count
from lora_sentiment.training.recipe import train


@pytest.fixture
def reviews_40(tmp_path, imdb_frames):
    train_frame, _ = imdb_frames
    rows = pd.concat([train_frame[train_frame.label == 0].head(20), train_frame[train_frame.label == 1].head(20)])
    path = tmp_path / "reviews.csv"
    rows.sample(frac=1, random_state=0)[["text", "label"]].to_csv(path, index=False)
    return path


def _config(model: str, data, out, **extra) -> TrainConfig:
    return TrainConfig(model=model, data=str(data), output_dir=str(out), max_length=32, epochs=2, batch_size=8,
                       precision="fp32", examples=["Fine."], **extra)  # fmt: skip


@pytest.mark.slow  # 8 tiny runs
def test_folds_score_every_training_text_out_of_sample_and_leave_the_kept_model_alone(
    tmp_path, tiny_bert, reviews_40, capsys
):
    plain = train(_config(tiny_bert, reviews_40, tmp_path / "plain"), log=lambda _: None)
    messages: list[str] = []
    folded = train(_config(tiny_bert, reviews_40, tmp_path / "folded", folds=3), log=messages.append)

    record = json.loads((folded.output_dir / "metrics.json").read_text())["cross_validation"]
    trained_on = 32  # 40 texts, 8 held out for evaluation (--eval-fraction 0.2)
    assert record["folds"] == 3 and record["samples"] == trained_on
    assert 0 <= record["accuracy"] <= 1 and record["intervals"]["accuracy"][0] <= record["accuracy"]
    assert record["baseline"]["samples"] == trained_on and record["comparison"]["texts"] == trained_on
    assert record["baseline"]["weighted"] is False  # balanced classes: --class-weights auto weighs nothing
    assert not (tmp_path / ".folded.checkpoints").exists()  # the folds' runs go with the checkpoints
    log = "\n".join(messages)
    assert "Cross-validated (3 folds, each of the 32 training texts" in log
    assert "Cross-validated (3 folds" in (folded.output_dir / "README.md").read_text()
    assert main(["report", str(folded.output_dir)]) == 0 and "Cross-validated (3 folds" in capsys.readouterr().out
    # The kept model is the one trained without --folds: same adapter, same final scores.
    ours, theirs = (
        load_file(folded.output_dir / "adapter_model.safetensors"),
        load_file(plain.output_dir / "adapter_model.safetensors"),
    )
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)
    assert folded.metrics.final["accuracy"] == plain.metrics.final["accuracy"]
    assert folded.seconds["folds"] > 0 and "folds" not in plain.seconds


def test_folds_that_cannot_hold_every_label_are_refused_before_training(tmp_path, tiny_bert, reviews_40, capsys):
    args = ["train", "--model", tiny_bert, "--data", str(reviews_40), "--output-dir", str(tmp_path / "run")]
    assert main([*args, "--folds", "20"]) == 2
    error = capsys.readouterr().err
    assert "--folds 20" in error and "lower --folds" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.checkpoints").exists()
    assert main([*args, "--folds", "1"]) == 2  # below the smallest K


def test_one_fold_check_for_audit_and_train():
    """Classes need k texts each (a class with none is no obstacle: no fold sees it); tags and numbers 2 a fold."""
    classes = LabelSpace("single-label", ["a", "b", "c"])
    check_fold_count(3, np.array([0, 0, 0, 1, 1, 1]), classes)  # "c" has no text
    with pytest.raises(UserError, match=r"--folds 4: .*a \(3\), b \(3\); lower --folds to 3"):
        check_fold_count(4, np.array([0, 0, 0, 1, 1, 1]), classes)
    with pytest.raises(UserError, match=r"a \(1\); add texts to or drop those classes"):
        check_fold_count(2, np.array([0, 1, 1, 1]), classes)
    numbers = LabelSpace("regression", ["score"])
    check_fold_count(5, np.arange(10.0), numbers)
    with pytest.raises(UserError, match=r"--folds 6: 10 training texts are too few .* lower --folds to 5"):
        check_fold_count(6, np.arange(10.0), numbers)


@pytest.mark.slow  # 4 tiny runs; the path is the one above
def test_folds_for_numbers_score_with_the_regression_metrics(tmp_path, tiny_bert, imdb_frames):
    frame, _ = imdb_frames
    path = tmp_path / "ratings.csv"
    frame.head(30).rename(columns={"rating": "score"})[["text", "score"]].to_csv(path, index=False)
    config = _config(tiny_bert, path, tmp_path / "run", folds=2, label_column="score", problem_type="regression")
    record = train(config, log=lambda _: None).metrics.cross_validation
    assert record["folds"] == 2 and record["samples"] == 24 and record["mae"] > 0 and "mae" in record["intervals"]
    assert record["baseline"]["mae"] > 0 and record["comparison"]["metric"] in ("mae", "spearman")


@pytest.mark.slow  # 2 + 3 tiny runs
def test_a_crash_in_the_folds_resumes_with_the_finished_folds_kept(tmp_path, tiny_bert, reviews_40, monkeypatch):
    from lora_sentiment.training import cross_fitting

    trained: list[int] = []
    original = cross_fitting._lora_fold

    def counted(job, fit_rows, held_out, folder, log):
        trained.append(len(fit_rows))
        if len(trained) == 2:
            raise KeyboardInterrupt  # the process dies in the second fold
        return original(job, fit_rows, held_out, folder, log)

    monkeypatch.setattr(cross_fitting, "_lora_fold", counted)
    config = _config(tiny_bert, reviews_40, tmp_path / "run", folds=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=lambda _: None)
    assert not (tmp_path / "run").exists() and (tmp_path / ".run.checkpoints").is_dir()

    trained.clear()
    resumed = train(config.model_copy(update={"resume": True}), log=lambda _: None)
    assert len(trained) == 1  # only the unfinished fold is trained again
    assert resumed.metrics.cross_validation["samples"] == 32
