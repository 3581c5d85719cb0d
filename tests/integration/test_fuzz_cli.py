"""The bad-input guarantee as a property, over generated inputs: every command answers a malformed file or a
wrong flag with exit 2 and one line on stderr that starts `lora-sentiment: error:` — no traceback, nothing left
behind — or does its work (exit 0). Files of every format the readers take (ragged CSV/TSV rows, quotes, BOMs,
NULs, CRLF, Latin-1 bytes, huge fields; broken, non-object and nested JSONL lines; Parquet columns of the wrong
type or of lists; empty files), and flags of the wrong type, out of range, unknown or in conflict.

`train` stops where the model would load, `tune` where its study would start, `serve` where uvicorn would
listen: what comes before them is what is checked. CI runs a fixed seed and a bounded number of examples; the
long run is `FUZZ_SEED=7 pytest tests/integration/test_fuzz_cli.py --hypothesis-profile=long` (docs/reliability.md):
`@seed` wins over `--hypothesis-seed`, so another search takes another FUZZ_SEED."""

from __future__ import annotations

import io
import json
import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from lora_sentiment.cli import main


class Stopped(Exception):
    """Raised where the work would begin: the input got past every check."""


# ------------------------------------------------------------------------------------------------ files

WORDS = ["a fine film", "dull", "text", "label", "", " ", '"', '""', ",", "\t", ";", "|", "\n", "\r\n", "\x00",
         "é", "日本", "😍", "<br />", "{", "[1, 2]", "null", "NaN", "-1", "0", "1", "2", "0.5", "1e9", "pos",
         "neg"]  # fmt: skip
cell = st.one_of(st.sampled_from(WORDS), st.text(max_size=12), st.just("x" * 200_000))
value = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), cell,
                  st.lists(st.sampled_from(["joy", "anger", "", 1]), max_size=3),
                  st.dictionaries(st.sampled_from(["a", "text"]), st.integers(0, 2), max_size=2))  # fmt: skip
column = st.sampled_from(["text", "label", "review", "labels", "", "predicted_label", "text "])


@st.composite
def delimited(draw, separator: str) -> bytes:
    header = draw(st.lists(column, min_size=0, max_size=4))
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=5), max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [separator.join(header)] + [separator.join(row) for row in rows]
    text = (draw(st.sampled_from(["", "\ufeff"])) + newline.join(lines)) if lines else ""
    return text.encode(draw(st.sampled_from(["utf-8", "latin-1"])), errors="replace")


@st.composite
def jsonl(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["object", "object", "object", "array", "number", "broken"]))
        if kind == "object":
            record = draw(st.dictionaries(column, value, max_size=3))
            lines.append(json.dumps(record, default=str))
        elif kind == "array":
            lines.append("[1, 2]")
        elif kind == "number":
            lines.append("7")
        else:
            lines.append('{"text": "unterminated')
    return "\n".join(lines).encode()


@st.composite
def parquet(draw) -> bytes:
    n = draw(st.integers(0, 6))
    columns = draw(st.lists(column, min_size=1, max_size=3, unique=True))
    frame = {}
    for name in columns:
        kind = draw(st.sampled_from(["str", "int", "float", "list", "none"]))
        make = {"str": lambda i: f"review {i}", "int": lambda i: i % 3, "float": lambda i: i / 7,
                "list": lambda i: ["joy"] * (i % 3), "none": lambda i: None}[kind]  # fmt: skip
        frame[name] = [make(i) for i in range(n)]
    buffer = io.BytesIO()
    pd.DataFrame(frame).to_parquet(buffer)
    return buffer.getvalue()


def data_file(fmt: str):
    return {
        "csv": delimited(","), "tsv": delimited("\t"), "txt": delimited("\n"), "jsonl": jsonl(), "parquet": parquet(),
        "empty": st.just(b""),
    }[fmt]  # fmt: skip


@st.composite
def a_file(draw) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(["csv", "tsv", "txt", "jsonl", "parquet", "empty"]))
    suffix = draw(st.sampled_from([fmt if fmt != "empty" else "csv", "csv", "jsonl", "dat"]))
    return suffix, draw(data_file(fmt))


# ------------------------------------------------------------------------------------------------ flags

number = st.one_of(st.integers(-5, 70_000).map(str), st.sampled_from(["0", "-1", "1.5", "abc", "", "1e3", "nan"]))
FLAGS = {
    "predict": {"--text-column": st.sampled_from(["text", "review", ""]), "--chunk-size": number,
                "--batch-size": number, "--workers": number, "--input-format": st.sampled_from(["csv", "xml", "txt"]),
                "--output-format": st.sampled_from(["jsonl", "parquet", "tsv", "png"]),
                "--long-text": st.sampled_from(["chunks", "truncate", "split"]), "--stride": number,
                "--precision": st.sampled_from(["fp32", "fp64", "auto"]), "--runner": st.sampled_from(["local", "x"]),
                "--ray-address": st.just("auto"), "--bogus": st.just("1"), "--text": st.just("also a text")},
    "evaluate": {"--split": st.sampled_from(["train", "test", "nope"]), "--text-column": st.sampled_from(["text", "x"]),
                 "--label-column": st.sampled_from(["label", "labels", "x"]), "--max-samples": number,
                 "--label-separator": st.sampled_from([",", "|"]), "--precision": st.sampled_from(["fp32", "fp8"]),
                 "--batch-size": number, "--stride": number},
    "train": {"--label-column": st.sampled_from(["label", "labels", "nope"]), "--problem-type":
              st.sampled_from(["auto", "multi-label", "regression", "ordinal"]), "--max-length": number,
              "--epochs": number, "--lora-r": number, "--learning-rate": number, "--eval-fraction": number,
              "--label-separator": st.sampled_from([",", "|"]), "--class-weights": st.sampled_from(["balanced",
              "{bad json", '{"zzz": 2}', "none"]), "--metric-for-best-model": st.sampled_from(["f1", "bleu"]),
              "--max-train-samples": number, "--threshold": number, "--resume": st.just(None)},
    "export": {"--format": st.sampled_from(["onnx", "openvino", "transformers", "tflite"]),
               "--quantize": st.sampled_from(["none", "int8", "int4"]), "--calibration-data": st.just("DATA"),
               "--calibration-samples": number, "--overwrite": st.just(None)},
    "serve": {"--port": number, "--max-texts": number, "--max-chars": number, "--batch-wait-ms": number,
              "--adapter-batching": st.sampled_from(["mixed", "split"]), "--runs-dir": st.just("DATA"),
              "--precision": st.sampled_from(["bf16", "fp8"]), "--runs-poll-s": number},
    "audit": {"--folds": number, "--near-duplicates": number, "--write-clean": st.sampled_from(["c.csv", "c.xlsx"]),
              "--relabel": st.just(None), "--label-column": st.sampled_from(["label", "labels", "nope"]),
              "--problem-type": st.sampled_from(["auto", "multi-label", "regression"]), "--overwrite": st.just(None)},
    "bench-serve": {"--text-column": st.sampled_from(["text", "review", ""]), "--requests": number,
                    "--concurrency": number, "--batch-wait-ms": number, "--mix": st.sampled_from(["both", "x"])},
    "bench-engines": {"--rows": number, "--output": st.sampled_from(["r.json", "no/such/dir/r.json"])},
    "tune": {"--search": st.sampled_from(["lora_r=4,8", "lora_r=0:9", "nope=1,2", "learning_rate=1:0:log", "x"]),
             "--trials": number, "--timeout": number, "--storage": st.sampled_from(["sqlite:///s.db", "bad url"]),
             "--keep": st.sampled_from(["best", "none"]), "--max-length": number, "--epochs": number},
}  # fmt: skip


@st.composite
def flags(draw, command: str) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(sorted(FLAGS[command])), max_size=4, unique=True))
    argv = []
    for name in chosen:
        given = draw(FLAGS[command][name])
        argv += [name] if given is None else [name, given]
    return argv


# -------------------------------------------------------------------------------------------- property


@pytest.fixture
def stop_before_the_work(monkeypatch):
    def stop(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr("lora_sentiment.training.recipe.setup_model", stop)
    monkeypatch.setattr("lora_sentiment.modeling.model.load_run_model", stop)  # export: where the run would load
    monkeypatch.setattr("lora_sentiment.training.tuning._storage", stop)
    monkeypatch.setattr("uvicorn.run", stop)
    # the bench commands: where the servers would start, where the engines would be exported
    monkeypatch.setattr("lora_sentiment.bench.serve_load.compare_batching", stop)
    monkeypatch.setattr("lora_sentiment.bench.serve_load.compare_models", stop)
    monkeypatch.setattr("lora_sentiment.export.writing.export_run", stop)


def _answer(argv: list[str], folder, capsys) -> None:
    """The property, for one command line run in `folder`."""
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals (our parser makes them one line too)
        code = exc.code
    except Stopped:
        return  # valid as far as the checks go: the work would start here
    err = capsys.readouterr().err
    if code == 0:
        return
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("lora-sentiment: note:")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("lora-sentiment: error:") and "Traceback" not in err, err
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before, "left something behind"


# The number of examples comes from the profile (tests/conftest.py): 40 in CI, 2000 with --hypothesis-profile=long.
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20261201"))


def _write(folder, suffix: str, content: bytes):
    path = folder / f"data.{suffix}"
    path.write_bytes(content)
    return path


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_predict_answers_any_file_and_flags(tmp_path_factory, trained_run, capsys, file, data):
    folder = tmp_path_factory.mktemp("fuzz-predict")
    source = _write(folder, *file)
    out = folder / data.draw(st.sampled_from(["out.jsonl", "out.csv", "out"]))
    argv = ["predict", str(trained_run), "--input", str(source), "--output", str(out), "--no-progress"]
    _answer(argv + data.draw(flags("predict")), folder, capsys)


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_evaluate_answers_any_file_and_flags(tmp_path_factory, trained_run, capsys, file, data):
    folder = tmp_path_factory.mktemp("fuzz-evaluate")
    argv = ["evaluate", str(trained_run), "--data", str(_write(folder, *file)), "--json"]
    _answer(argv + data.draw(flags("evaluate")), folder, capsys)


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_train_answers_any_file_and_flags(tmp_path_factory, tiny_distilbert, capsys, stop_before_the_work, file, data):
    folder = tmp_path_factory.mktemp("fuzz-train")
    argv = [
        "train",
        "--model",
        tiny_distilbert,
        "--data",
        str(_write(folder, *file)),
        "--output-dir",
        str(folder / "o"),
    ]
    _answer(argv + data.draw(flags("train")), folder, capsys)


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_tune_starts_or_refuses(tmp_path_factory, tiny_distilbert, capsys, stop_before_the_work, file, data):
    folder = tmp_path_factory.mktemp("fuzz-tune")
    argv = ["tune", "--model", tiny_distilbert, "--data", str(_write(folder, *file)), "--output-dir", str(folder / "t")]
    _answer(argv + data.draw(flags("tune")), folder, capsys)


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_audit_answers_any_file_and_flags(tmp_path_factory, capsys, file, data):
    """The TF-IDF scorer runs the whole audit (seconds), so every file here goes through it to the end."""
    folder = tmp_path_factory.mktemp("fuzz-audit")
    given = [a.replace("c.", str(folder / "c.")) if a.startswith("c.") else a for a in data.draw(flags("audit"))]
    argv = ["audit", "--scorer", "tfidf", "--data", str(_write(folder, *file)), "--output-dir", str(folder / "a")]
    _answer(argv + given, folder, capsys)


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_export_and_serve_start_or_refuse(tmp_path_factory, trained_run, capsys, stop_before_the_work, file, data):
    folder = tmp_path_factory.mktemp("fuzz-export")
    path = str(_write(folder, *file))
    command = data.draw(st.sampled_from(["export", "serve"]))
    given = [a.replace("DATA", path) for a in data.draw(flags(command))]
    argv = ["export", str(trained_run), str(folder / "x")] if command == "export" else ["serve", str(trained_run)]
    _answer(argv + given, folder, capsys)


@seed(FUZZ_SEED)
@settings(**SETTINGS)
@given(file=a_file(), data=st.data())
def test_bench_commands_start_or_refuse(tmp_path_factory, trained_run, capsys, stop_before_the_work, file, data):
    """`bench-serve` reads its requests and `bench-engines` its labelled rows before any server or export."""
    folder = tmp_path_factory.mktemp("fuzz-bench")
    path = str(_write(folder, *file))
    command = data.draw(st.sampled_from(["bench-serve", "bench-engines"]))
    given = [str(folder / a) if a.endswith(".json") else a for a in data.draw(flags(command))]
    _answer([command, str(trained_run), "--data", path, *given], folder, capsys)
