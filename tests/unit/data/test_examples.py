"""The examples a run predicts before and after training: the tutorial's for IMDB, the data's own otherwise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lora_sentiment.config import DEFAULT_EXAMPLES, TrainConfig
from lora_sentiment.data.examples import READABLE_CHARS, SHOWN, example_texts, shown
from lora_sentiment.data.splits import load_labeled_data


def _data(tmp_path, frame: pd.DataFrame, **settings):
    frame.to_parquet(tmp_path / "eval.parquet")
    frame.to_parquet(tmp_path / "train.parquet")
    config = TrainConfig(data=str(tmp_path / "train.parquet"), eval_data=str(tmp_path / "eval.parquet"), **settings)
    return config, load_labeled_data(config, log=lambda _: None)


def test_imdb_keeps_the_tutorial_sentences_and_given_examples_are_kept(tmp_path, imdb_frames):
    config, data = _data(tmp_path, imdb_frames[1].head(40)[["text", "label"]])
    for source in ("imdb", "stanfordnlp/imdb"):
        assert example_texts(config.model_copy(update={"data": source}), data) == (DEFAULT_EXAMPLES, None)
    acl = tmp_path / "aclImdb"
    for part in ("pos", "neg"):
        (acl / "train" / part).mkdir(parents=True)
    assert example_texts(config.model_copy(update={"data": str(acl)}), data) == (DEFAULT_EXAMPLES, None)
    # A folder of split files is the user's own data: its own texts, not the movie one-liners.
    assert example_texts(config.model_copy(update={"data": str(tmp_path)}), data)[1] is not None
    assert example_texts(config.model_copy(update={"examples": ["Mine."]}), data) == (["Mine."], None)
    assert example_texts(config.model_copy(update={"examples": []}), data) == ([], None)  # none asked for


def test_other_data_shows_short_texts_of_its_evaluation_split_from_every_class_with_their_labels(tmp_path):
    rng = np.random.default_rng(0)
    long = ["long text " * 40 + str(i) for i in range(60)]  # 400+ characters: only where too few short ones
    short = [f"short {i}" for i in range(9)]  # 8 of class a, 1 of class c, none of b
    frame = pd.DataFrame({"text": long + short,
                          "label": list(rng.choice(["a", "b"], 60)) + ["a"] * 8 + ["c"]})  # fmt: skip
    config, data = _data(tmp_path, frame)
    texts, given = example_texts(config, data)
    assert len(texts) == SHOWN and len(set(texts)) == SHOWN
    assert set(given) == {"a", "b", "c"}  # every class shows, the rare one too
    assert "short 8" in texts and given[texts.index("short 8")] == "c"
    truth = dict(zip(frame.text, frame.label))
    assert all(truth[t] == g for t, g in zip(texts, given))  # each with the label it was given
    assert sorted(given) == ["a", "a", "b", "b", "c"]  # one class after another
    assert all(t.startswith("short") for t, g in zip(texts, given) if g != "b")  # short ones first; b has none
    assert example_texts(config, data) == (texts, given)  # seeded: a resumed run predicts the same texts
    assert example_texts(config.model_copy(update={"seed": 1}), data) != (texts, given)


@pytest.mark.parametrize("kind", ["multi-label", "regression"])
def test_tags_and_numbers_show_their_given_values(tmp_path, kind):
    texts = [f"comment number {i}" for i in range(30)]
    labels = [["x", "y"] if i % 3 == 0 else ([] if i % 3 == 1 else ["y"]) for i in range(30)]
    if kind == "regression":
        labels = [float(i) / 2 for i in range(30)]
    config, data = _data(tmp_path, pd.DataFrame({"text": texts, "label": labels}), problem_type=kind)
    chosen, given = example_texts(config, data)
    assert len(chosen) == SHOWN
    for text, label in zip(chosen, given):
        i = texts.index(text)
        expected = f"{labels[i]:.4g}" if kind == "regression" else (", ".join(labels[i]) or "(no label)")
        assert label == expected


def test_shown_texts_are_one_line_without_tags_and_cut():
    assert shown("Good.<br /><br />Really   good.\nYes.") == "Good. Really good. Yes."
    cut = shown("word " * 100)
    assert len(cut) == READABLE_CHARS and cut.endswith("…")


def test_a_run_on_its_own_data_records_and_shows_the_given_labels(tmp_path, tiny_distilbert, imdb_frames):
    from lora_sentiment import train
    from lora_sentiment.runs.run import Run

    train_frame, val_frame = imdb_frames
    train_frame.head(32)[["text", "label"]].to_csv(tmp_path / "train.csv", index=False)
    val_frame.head(24)[["text", "label"]].to_csv(tmp_path / "eval.csv", index=False)
    config = TrainConfig(model=tiny_distilbert, data=str(tmp_path / "train.csv"), eval_data=str(tmp_path / "eval.csv"),
                         output_dir=str(tmp_path / "run"), max_length=32, epochs=1, precision="fp32")  # fmt: skip
    lines: list[str] = []
    result = train(config, log=lines.append)
    texts, given = example_texts(config, load_labeled_data(config, log=lambda _: None))
    assert not set(texts) & set(DEFAULT_EXAMPLES) and set(texts) <= set(val_frame.head(24).text)
    recorded = json.loads((result.output_dir / "metrics.json").read_text())["examples"]
    assert [row["text"] for row in recorded["after"]] == texts
    assert [row["given"] for row in recorded["before"]] == given == [row["given"] for row in recorded["after"]]
    log = "\n".join(lines)
    assert f"(given {given[0]})" in log and shown(texts[0]) in log
    card = (result.output_dir / "README.md").read_text()
    assert "| text | given | untrained | trained |" in card and f"| {given[0]} |" in card
    assert Run.open(result.output_dir).config.examples == texts  # the page and exports show the same texts
