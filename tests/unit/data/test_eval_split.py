"""load_eval_split: the evaluation split a run was scored on, read again without its training file."""

from __future__ import annotations

import pandas as pd
import pytest

from lora_sentiment.config import TrainConfig
from lora_sentiment.data import splits
from lora_sentiment.data.splits import load_eval_split, load_labeled_data


@pytest.mark.parametrize("kind", ["single-label", "multi-label"])
def test_the_same_rows_as_training_saw_from_the_evaluation_file_alone(tmp_path, imdb_frames, monkeypatch, kind):
    train_frame, val_frame = imdb_frames
    if kind == "multi-label":  # a second tag on long reviews, as lists

        def tags(frame: pd.DataFrame) -> pd.DataFrame:
            return frame.assign(label=[["pos" if y else "neg", *(["long"] * (len(t) > 900))]
                                       for y, t in zip(frame.label, frame.text)])  # fmt: skip

        train_frame, val_frame = tags(train_frame), tags(val_frame)
    train_file, eval_file = tmp_path / "train.parquet", tmp_path / "eval.parquet"
    train_frame.head(200)[["text", "label"]].to_parquet(train_file)
    val_frame.head(120)[["text", "label"]].to_parquet(eval_file)
    config = TrainConfig(data=str(train_file), eval_data=str(eval_file), max_eval_samples=50, seed=3)
    trained = load_labeled_data(config, log=lambda _: None)

    read: list[str] = []
    real = splits.load_splits
    monkeypatch.setattr(splits, "load_splits", lambda path, **kw: read.append(path) or real(path, **kw))
    again = load_eval_split(config, trained.space, log=lambda _: None)

    assert read == [str(eval_file)]  # the training file is not read
    assert again["text"] == trained.eval["text"]
    assert pd.Series(again["label"]).equals(pd.Series(trained.eval["label"]))
