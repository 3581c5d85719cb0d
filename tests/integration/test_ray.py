"""`predict --runner ray`: Ray Data over a file, folder or glob gives, row for row, what `predict --input` gives;
bad input fails in one line before or during the run and leaves no output folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lora_sentiment.batch.files import predict_file
from lora_sentiment.cli import main

ray = pytest.importorskip("ray", reason="the ray extra")  # installed by .ci/run: these tests run in CI

FP32 = ["--precision", "fp32"]


@pytest.fixture(scope="module")
def reviews(imdb_frames) -> pd.DataFrame:
    frame = imdb_frames[1].head(90)[["id", "rating", "text"]].reset_index(drop=True)
    frame.loc[5, "text"] = "   "  # a blank text: written back without a prediction, as by predict --input
    return frame


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the in-process tests (predict_on_ray uses a session it finds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _local_predictions(run: Path, frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    source, target = folder / "local-in.parquet", folder / "local-out.jsonl"
    frame.to_parquet(source)
    predict_file(str(run), str(source), str(target), output_format="jsonl", precision="fp32", progress=False)
    return pd.read_json(target, lines=True, dtype=False)


def _same_predictions(ray_rows: pd.DataFrame, local: pd.DataFrame) -> None:
    assert ray_rows["id"].tolist() == local["id"].tolist()
    assert ray_rows["predicted_label"].isna().tolist() == local["predicted_label"].isna().tolist()
    present = local["predicted_label"].notna()
    assert (
        ray_rows.loc[present, "predicted_label"].astype(int).tolist() == local.loc[present, "predicted_label"].tolist()
    )
    np.testing.assert_allclose(
        ray_rows.loc[present, "probability"].astype(float), local.loc[present, "probability"].astype(float), atol=1e-5
    )


@pytest.mark.slow
def test_a_folder_of_parquet_files_on_a_local_ray_matches_predict_input(tmp_path, trained_run, reviews):
    """The command as users run it: its own local Ray started and stopped, a folder of three files of
    different sizes, Parquet out; joined on (input_file, input_row), every row equals predict --input."""
    folder = tmp_path / "lake"
    folder.mkdir()
    parts = {"a.parquet": reviews.iloc[:40], "b.parquet": reviews.iloc[40:45], "c.parquet": reviews.iloc[45:]}
    for name, part in parts.items():
        part.to_parquet(folder / name)
    (folder / "_SUCCESS").write_text("")  # left by Spark and Hadoop writers: not data
    out = tmp_path / "predictions"
    command = [sys.executable, "-m", "lora_sentiment", "predict", str(trained_run), "--input", str(folder)]
    command += ["--output", str(out), "--runner", "ray", "--workers", "2", "--chunk-size", "16", *FP32]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Predicted 90 rows of 3 files with 2 Ray workers" in done.stderr
    # input order, as docs/prediction.md says
    got = pd.read_parquet(out).sort_values(["input_file", "input_row"]).reset_index(drop=True)
    assert sorted(set(got["input_file"])) == [str(folder / name) for name in parts]
    assert [len(got[got["input_file"] == str(folder / n)]) for n in parts] == [40, 5, 45]
    assert got["input_row"].tolist() == list(range(40)) + list(range(5)) + list(range(45))
    assert {"prob_Negative", "prob_Positive"} <= set(got.columns)
    _same_predictions(got, _local_predictions(trained_run, reviews, tmp_path))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_one_csv_file_to_jsonl_in_a_running_ray(tmp_path, trained_run, reviews, local_ray):
    from lora_sentiment.batch.ray_data import predict_on_ray
    from lora_sentiment.options import FileOptions, LoadOptions

    source = tmp_path / "reviews.csv"
    reviews.to_csv(source, index=False)
    options = FileOptions(output_format="jsonl", chunk_size=32, progress=False)
    summary = predict_on_ray(
        str(trained_run), str(source), str(tmp_path / "out"), options, LoadOptions(precision="fp32")
    )
    assert (summary.rows, summary.files_in, summary.workers) == (90, 1, 1)
    lines = [json.loads(line) for f in sorted((tmp_path / "out").glob("*.json*")) for line in f.open()]
    got = pd.DataFrame(lines).sort_values("input_row").reset_index(drop=True)
    assert got["input_row"].tolist() == list(range(90))
    assert set(got.loc[0, "probabilities"]) == {"Negative", "Positive"}
    _same_predictions(got, _local_predictions(trained_run, reviews, tmp_path))


@pytest.mark.slow
def test_explanations_on_ray_match_predict_input(tmp_path, trained_run, reviews, local_ray):
    """`--explain` on Ray: each actor explains its rows with the run's torch model, as `predict --input` does."""
    from lora_sentiment.batch.ray_data import predict_on_ray
    from lora_sentiment.options import ExplainOptions, FileOptions, LoadOptions

    rows = reviews.head(12)
    source = tmp_path / "reviews.parquet"
    rows.to_parquet(source)
    load, explain = LoadOptions(precision="fp32", engine="torch"), ExplainOptions(explain=True)
    options = FileOptions(output_format="jsonl", chunk_size=8, progress=False)
    predict_on_ray(str(trained_run), str(source), str(tmp_path / "out"), options, load, explain=explain)
    lines = [json.loads(line) for f in sorted((tmp_path / "out").glob("*.json*")) for line in f.open()]
    got = pd.DataFrame(lines).sort_values("input_row").reset_index(drop=True)
    local = tmp_path / "local.jsonl"
    predict_file(str(trained_run), str(source), str(local), FileOptions(output_format="jsonl", progress=False), load,
                 explain)  # fmt: skip
    expected = pd.read_json(local, lines=True, dtype=False)
    present = expected["predicted_label"].notna()
    assert got["explanation"].isna().tolist() == expected["explanation"].isna().tolist()
    for ours, theirs in zip(got.loc[present, "explanation"], expected.loc[present, "explanation"]):
        assert [w["word"] for w in ours["words"]] == [w["word"] for w in theirs["words"]]
        np.testing.assert_allclose([w["score"] for w in ours["words"]], [w["score"] for w in theirs["words"]],
                                   atol=1e-4)  # fmt: skip


def _broken_jsonl(folder: Path) -> None:
    good = "".join(json.dumps({"text": f"review {i}"}) + "\n" for i in range(60))
    (folder / "a.jsonl").write_text(good)
    (folder / "b.jsonl").write_text(good + "{not json\n" + good)  # broken past the first rows: found mid-run


def _missing_column(folder: Path) -> None:
    pd.DataFrame({"text": ["fine"] * 5}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"review": ["fine"] * 5}).to_parquet(folder / "b.parquet")


def _unreadable(folder: Path) -> None:
    pd.DataFrame({"text": ["fine"] * 5}).to_parquet(folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"PAR1 not really")


@pytest.mark.parametrize(
    "make, words",
    [
        (_missing_column, ["no column 'text'", "b.parquet", "columns are: review", "--text-column"]),
        (_unreadable, ["could not read", "b.parquet", "as parquet"]),
        (_broken_jsonl, ["could not read", "b.jsonl", "as jsonl"]),
    ],
)
@pytest.mark.slow  # starts a local Ray
def test_bad_input_in_one_file_fails_in_one_line_and_leaves_no_output(
    tmp_path, trained_run, local_ray, capsys, make, words
):
    folder = tmp_path / "in"
    folder.mkdir()
    make(folder)
    out = tmp_path / "out"
    code = main(["predict", str(trained_run), "--input", str(folder), "--output", str(out), "--runner", "ray"])
    err = capsys.readouterr().err.strip()
    # our notes (the compile, or that it waits; the int8 check) are not errors, and come only on a run's first jobs
    ours = "\n".join(line for line in err.splitlines() if not line.startswith("lora-sentiment: note:"))
    assert code == 2
    assert len(ours.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in ours for w in words), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nor a hidden half-written folder


@pytest.mark.slow
def test_a_file_broken_mid_run_stops_the_command_with_one_line(tmp_path, trained_run):
    """What a user sees when a task fails inside Ray: our one line, not Ray's stacks (its C++ core may add
    a line of its own, in its log format, when it starts)."""
    folder = tmp_path / "in"
    folder.mkdir()
    _broken_jsonl(folder)
    command = [sys.executable, "-m", "lora_sentiment", "predict", str(trained_run), "--input", str(folder / "*.jsonl")]
    command += ["--output", str(tmp_path / "out"), "--runner", "ray", "--chunk-size", "16"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    # Ray's own log lines and our notes (the compile, the int8 check on CPUs with int8 units) are not errors
    ours = [line for line in done.stderr.splitlines() if line and not line.startswith(("[20", "lora-sentiment: note:"))]
    assert done.returncode == 2
    assert len(ours) == 1 and ours[0].startswith("lora-sentiment: error: could not read"), done.stderr
    assert "b.jsonl as jsonl" in ours[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize(
    "inputs, extra, words",
    [
        ({"a.csv": "text\nx\n", "b.jsonl": '{"text": "y"}\n'}, [], ["mixes csv and jsonl"]),
        ({}, [], ["no input files in"]),
        ({"a.csv": "text\nx\n"}, ["--output-format", "tsv"], ["--runner ray writes parquet, jsonl, csv"]),
        ({"a.csv": "text\nx\n"}, ["--output", "-"], ["not stdout"]),
        ({"a.csv": "input_row,text\n1,x\n"}, [], ["column named 'input_row'"]),
    ],
)
def test_refused_before_ray_starts(tmp_path, trained_run, capsys, monkeypatch, inputs, extra, words):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, content in inputs.items():
        (folder / name).write_text(content)
    monkeypatch.setattr("ray.init", lambda *a, **k: pytest.fail("Ray started for input refused up front"))
    argv = ["predict", str(trained_run), "--input", str(folder), "--runner", "ray", "--output", str(tmp_path / "o")]
    code = main(argv + extra)
    err = capsys.readouterr().err
    assert code == 2 and all(w in err for w in words), err


def _predict_one_file(run, folder, output: str) -> int:
    (folder / "a.csv").write_text("text\nfine\n")
    return main(["predict", str(run), "--input", str(folder / "a.csv"), "--output", str(folder / output),
                 "--runner", "ray"])  # fmt: skip


def test_engine_is_the_deprecated_name_of_runner(tmp_path, trained_run, capsys, monkeypatch):
    monkeypatch.setattr("ray.init", lambda *a, **k: pytest.fail("Ray started for input refused up front"))
    (tmp_path / "a.csv").write_text("text\nfine\n")
    argv = ["predict", str(trained_run), "--input", str(tmp_path / "a.csv"), "--engine", "ray", "--output", "-"]
    assert main(argv) == 2
    note, error = capsys.readouterr().err.splitlines()
    assert "--engine local|ray is deprecated; use --runner" in note
    assert "--runner ray writes a folder of files, not stdout" in error


def test_an_existing_output_needs_overwrite(tmp_path, trained_run, capsys):
    (tmp_path / "out").mkdir()
    assert _predict_one_file(trained_run, tmp_path, "out") == 2
    assert "--overwrite" in capsys.readouterr().err


def test_without_the_extra_the_error_names_it(tmp_path, trained_run, capsys, monkeypatch):
    import lora_sentiment.modeling.ray_cluster as cluster

    monkeypatch.setattr(cluster.importlib.util, "find_spec", lambda name: None)
    assert _predict_one_file(trained_run, tmp_path, "o") == 2
    assert "pip install 'lora-sentiment[ray]'" in capsys.readouterr().err


def test_actors_take_one_gpu_each_or_a_nodes_cores():
    from lora_sentiment.batch.ray_data import plan

    gpus = plan(["a"], "csv", None, {"CPU": 64.0, "GPU": 4.0}, nodes=2)
    assert (gpus.workers, gpus.gpus_per_worker, gpus.cpus_per_worker) == (4, 1, 1.0)
    cpus = plan(["a"], "csv", None, {"CPU": 48.0}, nodes=3)  # one actor per node, with (nearly) its cores
    assert (cpus.workers, cpus.gpus_per_worker, cpus.threads) == (3, 0, 16)
    assert cpus.cpus_per_worker == 15.5  # room for a read and a write task on each node
    assert plan(["a"], "csv", 6, {"CPU": 48.0}, nodes=3).workers == 6
    with pytest.raises(Exception, match="--workers must be at least 1"):
        plan(["a"], "csv", 0, {"CPU": 2.0}, nodes=1)
