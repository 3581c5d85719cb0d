"""`predict --input/--output`: every row written back with its predictions, chunked, any supported format."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lora_sentiment.batch.files import predict_file
from lora_sentiment.cli import main
from lora_sentiment.data.tables import read_chunks
from lora_sentiment.errors import UserError


@pytest.fixture(scope="module")
def reviews(imdb_frames) -> pd.DataFrame:
    frame = imdb_frames[1].head(50)[["id", "rating", "text", "label"]].reset_index(drop=True)
    return frame.rename(columns={"text": "review"})


def test_csv_in_csv_out_keeps_every_row_and_column(tmp_path, reviews, trained_run, trained_classifier, capsys):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    reviews.to_csv(source, index=False)
    code = main(
        [
            "predict",
            str(trained_run),
            "--input",
            str(source),
            "--output",
            str(target),
            "--text-column",
            "review",
            "--chunk-size",
            "7",
            "--precision",
            "fp32",
        ]
    )
    assert code == 0
    assert "Predicted 50 of 50 rows." in capsys.readouterr().err
    out = pd.read_csv(target)
    assert list(out.columns) == [
        "id",
        "rating",
        "review",
        "label",
        "predicted_label",
        "predicted_label_name",
        "probability",
        "prob_Negative",
        "prob_Positive",
    ]
    pd.testing.assert_frame_equal(out[reviews.columns], reviews)  # rows in order, values as they were
    expected = trained_classifier.predict_proba(reviews.review.tolist())
    assert out[["prob_Negative", "prob_Positive"]].to_numpy() == pytest.approx(expected, abs=1e-5)
    assert (out.predicted_label == expected.argmax(1)).all()
    assert (out.predicted_label_name == np.array(["Negative", "Positive"])[expected.argmax(1)]).all()
    assert out.probability.to_numpy() == pytest.approx(expected.max(1), abs=1e-5)
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".json", "lines.json"])
def test_jsonl_json_and_parquet_inputs_to_jsonl(tmp_path, reviews, trained_classifier, suffix):
    """.json is an array of row objects (pretty-printed here) or JSON Lines, as `train --data` reads it."""
    source, target = tmp_path / f"in{suffix}", tmp_path / "out.jsonl"
    if suffix in (".jsonl", "lines.json"):
        reviews.to_json(source, orient="records", lines=True)
    elif suffix == ".json":
        reviews.to_json(source, orient="records", indent=2)
    else:
        reviews.to_parquet(source)
    summary = predict_file(
        trained_classifier, str(source), str(target), text_column="review", chunk_size=16, progress=False
    )
    assert (summary.rows, summary.predicted, summary.skipped_empty) == (50, 50, 0)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == reviews.id.tolist() and [r["rating"] for r in rows] == reviews.rating.tolist()
    expected = trained_classifier.predict_proba(reviews.review.tolist())
    got = np.array([[r["probabilities"]["Negative"], r["probabilities"]["Positive"]] for r in rows])
    assert got == pytest.approx(expected, abs=1e-5)


def test_parquet_output_joins_chunks_whose_columns_differ(tmp_path, reviews, trained_classifier):
    """Each chunk is a part; the parts are joined under one schema: a column null in one chunk and numbers in
    another, an integer column that turns float, a key missing from a chunk's lines, a chunk of rows without text."""
    rows = [{"text": f"Review {i}: {'fine' if i % 2 else 'dull'}.", "score": i, "note": None} for i in range(8)]
    rows[5]["score"], rows[6]["note"], rows[7] = 2.5, "seen twice", {"text": "   ", "score": 7}
    source, target = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(UserError, match=r"--chunksize: no such option; did you mean --chunk-size\?"):
        predict_file(trained_classifier, str(source), str(target), chunksize=3)  # pandas' spelling
    summary = predict_file(trained_classifier, str(source), str(target), chunk_size=3, progress=False)
    assert (summary.rows, summary.predicted, summary.skipped_empty) == (8, 7, 1)
    out = pd.read_parquet(target)
    assert out.text.tolist() == [r["text"] for r in rows] and out.score.tolist() == [0, 1, 2, 3, 4, 2.5, 6, 7]
    assert out.note.isna().tolist()[5:7] == [True, False] and out.note[6] == "seen twice"
    assert out.predicted_label.isna().tolist()[-2:] == [False, True]
    expected = trained_classifier.predict_proba([r["text"] for r in rows[:7]])
    assert out[["prob_Negative", "prob_Positive"]].to_numpy()[:7] == pytest.approx(expected, abs=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.parquet"]  # no part or partial left
    clash = tmp_path / "clash.jsonl"  # a column of texts in one chunk and of numbers in the next: refused, nothing left
    clash.write_text("".join(json.dumps({"text": "Fine.", "id": v}) + "\n" for v in ("a1", "a2", 3, 4)))
    with pytest.raises(UserError, match="a column of .*clash.jsonl changes type between rows"):
        predict_file(trained_classifier, str(clash), str(tmp_path / "clash.parquet"), chunk_size=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clash.jsonl", "in.jsonl", "out.parquet"]


def test_missing_and_blank_texts_are_written_without_a_prediction(tmp_path, trained_classifier):
    source, target = tmp_path / "in.jsonl", tmp_path / "out.csv"
    source.write_text('{"text": "Great."}\n{"text": null}\n{"text": "   "}\n{"text": "Awful."}\n')
    summary = predict_file(trained_classifier, str(source), str(target), progress=False)
    assert (summary.rows, summary.predicted, summary.skipped_empty) == (4, 2, 2)
    out = pd.read_csv(target)
    assert out.predicted_label.isna().tolist() == [False, True, True, False]


def test_the_progress_bar_is_drawn_where_someone_watches_and_not_into_a_piped_log(
    tmp_path, trained_classifier, capsys, monkeypatch
):
    import lora_sentiment.batch.files as files

    source = tmp_path / "in.txt"
    source.write_text("Great.\nAwful.\n")
    predict_file(trained_classifier, str(source), str(tmp_path / "piped.csv"))  # capsys' stderr is no terminal
    assert "Predicting" not in capsys.readouterr().err
    monkeypatch.setattr(files, "bars_shown", lambda: True)
    predict_file(trained_classifier, str(source), str(tmp_path / "watched.csv"))
    assert "Predicting" in capsys.readouterr().err
    predict_file(trained_classifier, str(source), str(tmp_path / "asked-off.csv"), progress=False)
    assert "Predicting" not in capsys.readouterr().err


@pytest.mark.slow
def test_txt_lines_through_stdin_and_stdout_in_a_real_process(trained_run):
    result = subprocess.run(
        [sys.executable, "-m", "lora_sentiment", "predict", str(trained_run), "--input", "-", "--no-progress"],
        input="A wonderful film.\nDull, dull, dull.\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["A wonderful film.", "Dull, dull, dull."]
    assert all(r["predicted_label_name"] in {"Negative", "Positive"} for r in rows)
    assert "Predicted 2 of 2 rows." in result.stderr


def test_reading_is_chunked_so_memory_is_bounded_by_the_chunk(tmp_path, reviews):
    source = tmp_path / "in.csv"
    reviews.to_csv(source, index=False)
    assert [len(chunk) for chunk in read_chunks(str(source), "csv", 16)] == [16, 16, 16, 2]
    lines = tmp_path / "in.txt"
    lines.write_text("\n".join(f"review {i}" for i in range(10)) + "\n")
    assert [len(chunk) for chunk in read_chunks(str(lines), "txt", 4)] == [4, 4, 2]


@pytest.mark.parametrize(
    "name, content",
    [
        ("t.csv", 'text,id\n"a review, with a comma",1\n\n   \n"two\nlines",2\n,\n"x",3'),
        ("t.tsv", "text\tid\na\t1\n\nb\t2\n"),
        ("t.jsonl", '{"text": "a"}\n\n{"text": "b"}\n   \n{"text": "c"}'),
        ("t.txt", "a\n\nb\r\nc"),
        ("t.json", '{"text": "a"}\n\n{"text": "b"}\n'),
    ],
)
def test_a_files_rows_are_known_before_it_is_read_and_equal_what_the_reader_gives(tmp_path, name, content):
    """total_rows decides whether a job repays a compile at its start: it must count what read_chunks yields
    (quoted line breaks, blank lines, a last line without its end) without parsing the file twice."""
    from lora_sentiment.data.tables import total_rows

    path = tmp_path / name
    path.write_text(content, newline="")
    fmt = name.split(".")[1]
    assert total_rows(str(path), fmt) == sum(len(chunk) for chunk in read_chunks(str(path), fmt, 2))
    assert total_rows("-", fmt) is None  # stdin is read once: counted as it goes


def test_a_json_array_is_chunked_and_one_read_as_json_lines_is_refused(tmp_path):
    from lora_sentiment.data.tables import total_rows

    rows = [{"text": f"review {i}", "id": i} for i in range(10)]
    array = tmp_path / "rows.json"
    array.write_text(json.dumps(rows, indent=1))
    chunks = list(read_chunks(str(array), "json", 4))
    assert [len(c) for c in chunks] == [4, 4, 2] and pd.concat(chunks).text.tolist() == [r["text"] for r in rows]
    assert total_rows(str(array), "json") is None  # parsed whole when read, not counted before
    # Read as JSON Lines, the array would be one row with a column per position (0..9): refused instead.
    with pytest.raises(UserError, match="one JSON array, not JSON Lines.*--input-format json"):
        list(read_chunks(str(array), "jsonl", 4))
    flat = tmp_path / "flat.jsonl"
    flat.write_text(json.dumps(rows))  # the array on one line: parses as JSON Lines, so refused by its columns
    with pytest.raises(UserError, match="one JSON array"):
        list(read_chunks(str(flat), "jsonl", 4))
    lists = tmp_path / "lists.json"
    lists.write_text('[["a", 1], ["b", 0]]')
    with pytest.raises(UserError, match="array of lists, not of row objects"):
        list(read_chunks(str(lists), "json", 4))


@pytest.mark.parametrize(
    "column, content, kind",
    [
        ("id", '{"text": "Great.", "id": 1}\n{"text": "Awful.", "id": 2}\n', "int"),
        ("text", '{"text": ["Great.", "Awful."]}\n', "list"),
        ("text", '{"text": "Great."}\n{"text": {"title": "Awful."}}\n', "dict"),
    ],
)
def test_a_text_column_of_numbers_lists_or_objects_is_refused_not_left_unpredicted(
    tmp_path, trained_run, capsys, column, content, kind
):
    """Before, each such row passed as a row with no text: an output of empty predictions and exit 0."""
    source, target = tmp_path / "in.jsonl", tmp_path / "out.csv"
    source.write_text(content)
    code = main(["predict", str(trained_run), "--input", str(source), "--output", str(target), "--text-column", column])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and f"the text column {column!r} of {source} holds {kind} values, not texts" in err
    assert "--text-column" in err and not target.exists() and not list(tmp_path.glob(".*partial"))
    numbers = tmp_path / "in.parquet"
    pd.DataFrame({"text": ["Great.", "Awful."], "id": [1, 2]}).to_parquet(numbers)
    assert (
        main(["predict", str(trained_run), "--input", str(numbers), "--output", str(target), "--text-column", "id"])
        == 2
    )
    assert "holds int values" in capsys.readouterr().err and not target.exists()


@pytest.mark.parametrize(
    "setup, args, needle",
    [
        (None, ["--input", "nope.csv", "--output", "o.csv"], "input file not found"),
        (None, ["--input", ".", "--output", "o.csv"], "--input . is a folder; give one file (--runner ray reads"),
        (
            "in.csv",
            ["--input", "in.csv", "--output", "o.csv", "--text-column", "body"],
            "columns are: id, rating, review, label",
        ),
        ("in.csv", ["--input", "in.csv", "--output", "o.xlsx"], "--output-format"),
        ("in.csv", ["--input", "in.csv", "--output-format", "parquet"], "Parquet is written to a file, not stdout"),
        ("in.xml", ["--input", "in.xml", "--output", "o.csv"], "--input-format"),
        ("in.csv", ["--input", "in.csv", "--output", "exists.csv"], "--overwrite"),
        ("in.csv", ["Also a text.", "--input", "in.csv", "--output", "o.csv"], "not both"),
    ],
)
def test_bad_batch_arguments_fail_with_one_line_and_write_nothing(
    tmp_path, reviews, trained_run, capsys, monkeypatch, setup, args, needle
):
    monkeypatch.chdir(tmp_path)
    if setup:
        reviews.to_csv(tmp_path / setup, index=False)
    (tmp_path / "exists.csv").write_text("keep me")
    assert main(["predict", str(trained_run), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lora-sentiment: error:") and needle in err
    assert not (tmp_path / "o.csv").exists() and (tmp_path / "exists.csv").read_text() == "keep me"
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_worker_processes_give_the_same_rows_in_the_same_order(tmp_path, reviews, trained_run):
    source = tmp_path / "in.csv"
    pd.concat([reviews] * 3, ignore_index=True).to_csv(source, index=False)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    predict_file(
        str(trained_run), str(source), str(one), text_column="review", chunk_size=16, progress=False, precision="fp32"
    )
    summary = predict_file(
        str(trained_run),
        str(source),
        str(two),
        text_column="review",
        chunk_size=16,
        progress=False,
        precision="fp32",
        workers=2,
    )
    assert summary.rows == summary.predicted == 150
    a, b = pd.read_csv(one), pd.read_csv(two)
    pd.testing.assert_frame_equal(
        a.drop(columns=["probability", "prob_Negative", "prob_Positive"]),
        b.drop(columns=["probability", "prob_Negative", "prob_Positive"]),
    )
    assert b[["prob_Negative", "prob_Positive"]].to_numpy() == pytest.approx(
        a[["prob_Negative", "prob_Positive"]].to_numpy(), abs=1e-5
    )


@pytest.mark.slow
def test_a_damaged_run_fails_once_in_the_workers_too(tmp_path, reviews, trained_run):
    import shutil

    from lora_sentiment.errors import UserError

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "adapter_model.safetensors").write_bytes(b"garbage")
    source = tmp_path / "in.csv"
    reviews.to_csv(source, index=False)
    with pytest.raises(UserError, match="could not load the LoRA adapter"):
        predict_file(str(run), str(source), str(tmp_path / "out.csv"), text_column="review", progress=False, workers=2)
    assert not (tmp_path / "out.csv").exists()


def test_more_workers_than_cores_is_refused_before_any_starts(trained_run, tmp_path, capsys):
    """Each worker loads its own copy of the model: a fuzzed --workers 70000 once took all the memory."""
    import os

    from lora_sentiment.batch.ray_data import plan
    from lora_sentiment.cli import main
    from lora_sentiment.errors import UserError

    (tmp_path / "in.csv").write_text("text\nfine\n")
    argv = ["predict", str(trained_run), "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")]
    assert main([*argv, "--workers", str((os.cpu_count() or 1) + 1)]) == 2
    assert "CPU cores, and each worker loads its own copy of the model" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    with pytest.raises(UserError, match="more than the cluster's 48 CPUs"):
        plan(["a"], "csv", 70_000, {"CPU": 48.0}, nodes=3)


def test_a_table_in_memory_given_for_a_file_is_named_in_one_line(trained_run, tmp_path):
    """A DataFrame passed as predict_file's input failed with pandas' "truth value of a DataFrame is ambiguous"."""
    from lora_sentiment import predict_file
    from lora_sentiment.runs.run import Run

    with pytest.raises(TypeError, match=r"input_path is a file's path \(or '-'\), not a DataFrame; texts in memory"):
        predict_file(trained_run, pd.DataFrame({"text": ["Great."]}), str(tmp_path / "out.csv"))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "reviews.csv").write_text("text\nGreat.\n")
    with pytest.raises(UserError, match="reviews.csv is a file, not a run directory"):
        Run.open(tmp_path / "reviews.csv")
