"""A file shaped like the training file needs no column flags: `predict --input` and `evaluate` read the columns a
run was trained on (its --text-column / --label-column) where the file has them, else `text` / `label`."""

import json

import numpy as np
import pandas as pd
import pytest

from lora_sentiment import UserError, load_classifier
from lora_sentiment.batch.files import predict_file
from lora_sentiment.batch.ray_data import checked_text_column
from lora_sentiment.cli import main
from lora_sentiment.data.tables import column_to_read
from lora_sentiment.options import FileOptions


@pytest.mark.parametrize(
    "given, trained, columns, expected",
    [
        (None, ["review"], ["id", "review", "label"], "review"),  # the run's own
        (None, ["review"], ["text", "review"], "review"),  # the run's own over the default name
        (None, ["review"], ["text", "label"], "text"),  # a file without it: the default, as before
        (None, ["text"], ["text", "review"], "text"),
        (None, [None], ["text"], "text"),  # nothing known of the run
        ("body", ["review"], ["body", "review", "text"], "body"),  # the flag wins
        (None, ["review", "review", "text"], ["review", "text"], "review"),  # runs that agree
        (None, ["review", "body"], ["review", "text"], "review"),  # only one of theirs is in the file
    ],
)
def test_which_column_a_file_is_read_from(given, trained, columns, expected):
    assert column_to_read(given, trained, "text", columns, "--text-column", "f.csv") == expected


def test_ambiguous_or_missing_columns_are_refused_naming_the_flag():
    with pytest.raises(UserError, match=r"'review' and 'body' \(--text-column\), and f.csv has both; set --text"):
        column_to_read(None, ["review", "body"], "text", ["review", "body"], "--text-column", "f.csv")
    with pytest.raises(UserError, match=r"no column 'review' \(the run's --text-column\) or 'text' in f.csv; "
                       r"columns are: body, label \(set --text-column\)"):  # fmt: skip
        column_to_read(None, ["review"], "text", ["body", "label"], "--text-column", "f.csv")


@pytest.fixture(scope="module")
def review_run(tmp_path_factory, tiny_bert, imdb_frames):
    """A tiny run trained on a file whose columns are `review` and `sentiment` (names, not ids)."""
    from lora_sentiment import TrainConfig, train

    folder = tmp_path_factory.mktemp("columns")
    rows = imdb_frames[0].groupby("label").head(24).sample(frac=1, random_state=0)
    rows = rows.assign(review=rows.text, sentiment=rows.label.map({0: "neg", 1: "pos"}))[["review", "sentiment"]]
    rows.to_csv(folder / "train.csv", index=False)
    config = TrainConfig(
        model=tiny_bert, data=str(folder / "train.csv"), text_column="review", label_column="sentiment",
        output_dir=str(folder / "run"), max_length=32, epochs=1, batch_size=16, precision="fp32", baseline="none",
    )  # fmt: skip
    train(config, log=lambda _: None)
    return folder / "run"


@pytest.fixture(scope="module")
def held_out(imdb_frames) -> pd.DataFrame:
    rows = imdb_frames[1].groupby("label").head(10).reset_index(drop=True)
    # `text` holds something else: a file with both must be read from the run's own column.
    return pd.DataFrame({"review": rows.text, "sentiment": rows.label.map({0: "neg", 1: "pos"}), "text": "Great!"})


def test_predict_reads_the_runs_text_column(tmp_path, review_run, held_out):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    held_out.to_csv(source, index=False)
    predict_file(str(review_run), str(source), str(target), progress=False, precision="fp32")
    expected = load_classifier(review_run, precision="fp32").predict_scores(held_out.review.tolist())
    np.testing.assert_allclose(pd.read_csv(target)[["prob_neg", "prob_pos"]].to_numpy(), expected, atol=1e-5)
    # The Ray runner decides the column the same way, before any Ray starts.
    assert checked_text_column([str(source)], "csv", str(review_run), FileOptions()) == "review"
    # A file with only `text` is read from it, as before; with neither, one line names both and the flag.
    only_text = tmp_path / "text.csv"
    held_out[["text"]].to_csv(only_text, index=False)
    assert predict_file(str(review_run), str(only_text), str(tmp_path / "o2.csv"), progress=False).predicted == 20
    neither = tmp_path / "neither.csv"
    held_out.rename(columns={"review": "body"})[["body"]].to_csv(neither, index=False)
    with pytest.raises(UserError, match="no column 'review' \\(the run's --text-column\\) or 'text'"):
        predict_file(str(review_run), str(neither), str(tmp_path / "o3.csv"), progress=False)
    assert not (tmp_path / "o3.csv").exists()


def test_evaluate_reads_the_runs_text_and_label_columns(tmp_path, review_run, held_out, capsys):
    source = tmp_path / "held_out.csv"
    held_out.to_csv(source, index=False)
    assert main(["evaluate", str(review_run), "--data", str(source), "--json", "--precision", "fp32"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    flagged = ["--text-column", "review", "--label-column", "sentiment"]
    assert main(["evaluate", str(review_run), "--data", str(source), "--json", "--precision", "fp32", *flagged]) == 0
    assert json.loads(capsys.readouterr().out) == metrics
    assert metrics["samples"] == 20
    # The Python API reads them the same way.
    assert load_classifier(review_run, precision="fp32").evaluate(str(source))["accuracy"] == metrics["accuracy"]


def test_several_runs_each_read_their_own_label_column(tmp_path, tiny_runs, imdb_frames, capsys):
    """The stars run was trained on `stars`, the sentiment run on `label`: before, `evaluate` scored the stars
    run against `label`'s 0/1, which it took for its first two star classes."""
    from conftest import stars

    rows = imdb_frames[1].head(40).assign(stars=lambda f: f.rating.map(stars))[["text", "label", "stars"]]
    rows.to_csv(tmp_path / "held_out.csv", index=False)
    common = ["--data", str(tmp_path / "held_out.csv"), "--json", "--precision", "fp32"]
    runs = [f"sentiment={tiny_runs / 'sentiment'}", f"stars={tiny_runs / 'stars'}"]
    assert main(["evaluate", *runs, *common]) == 0
    both = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(tiny_runs / "stars"), *common, "--label-column", "stars"]) == 0
    assert both["stars"]["accuracy"] == json.loads(capsys.readouterr().out)["accuracy"]
    assert main(["evaluate", str(tiny_runs / "sentiment"), *common, "--label-column", "label"]) == 0
    assert both["sentiment"]["accuracy"] == json.loads(capsys.readouterr().out)["accuracy"]
    assert "comparison_with_sentiment" not in both["stars"]  # other labels: no paired comparison


def test_bench_serve_takes_its_requests_from_the_runs_text_column(tmp_path, held_out):
    from lora_sentiment.cli.bench_serve import _requests

    held_out.to_csv(tmp_path / "requests.csv", index=False)
    assert _requests(str(tmp_path / "requests.csv"), None, ["review"]) == held_out.review.tolist()
    assert _requests(str(tmp_path / "requests.csv"), "text", ["review"]) == ["Great!"] * 20
    (tmp_path / "lines.txt").write_text("One.\n\nTwo.\n")
    assert _requests(str(tmp_path / "lines.txt"), None, ["review"]) == ["One.", "Two."]
