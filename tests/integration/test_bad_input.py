"""The bad-input matrix: every case gives a one-line error that names the fix and exit 2 with nothing written,
or a documented recovery (dropped rows counted, a clipped length logged) — never a traceback."""

import json
import math
import os
import threading
from contextlib import contextmanager

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lora_sentiment.cli import main

REVIEWS = [f"review number {i}, {'a fine film' if i % 2 else 'a dull film'}" for i in range(40)]


TAGS_JSONL = "".join(
    json.dumps({"text": f"comment {i}", "label": [["joy"], ["anger", "joy"], ["love"]][i % 3]}) + "\n"
    for i in range(30)
)
SCORES_CSV = "text,label\n" + "".join(f"text {i},{i / 3:.2f}\n" for i in range(30))


def _rows(extra: str = "") -> str:
    return "text,label\n" + "".join(f"{t!r},{i % 2}\n".replace("'", '"') for i, t in enumerate(REVIEWS)) + extra


def _write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif name.endswith("/"):
        path.mkdir()
        (path / "readme.txt").write_text(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# (name, file name, file content, extra flags, expected words in the error)
TRAIN_ERRORS = [
    ("missing file", None, None, ["--data", "nowhere.csv"], "data file not found"),
    # a mistyped model path was taken for a hub name, and refused only after the data and the baseline
    ("a model path that does not exist", "data.csv", _rows(), ["--model", "./models/nowhere"], "no such folder"),
    ("a model folder that is not a saved model", "data.csv", _rows(), ["--model", "."], "without config.json"),
    ("folder without the aclImdb layout", "folder/", "hello", [], "aclImdb layout"),
    ("unsupported extension", "data.xlsx", "x", [], "use one of .csv"),
    (
        "malformed CSV row",
        "data.csv",
        _rows('"extra",1,surplus,fields\n'),
        [],
        "quote the field that contains the separator",
    ),
    ("missing text column", "data.csv", _rows(), ["--text-column", "review"], "columns are: text, label"),
    ("missing label column", "data.csv", _rows(), ["--label-column", "sentiment"], "columns are: text, label"),
    # both named otherwise: one error naming both flags, not one run to learn each
    (
        "text and label columns both missing",
        "data.csv",
        _rows(),
        ["--text-column", "review", "--label-column", "sentiment"],
        "data.csv; columns are: text, label (set --text-column and --label-column)",
    ),
    # Excel in many locales saves "CSV" with semicolons: one column named "text;label", not a --text-column fix.
    (
        "a semicolon-separated .csv",
        "data.csv",
        _rows().replace(",", ";"),
        [],
        "the fields look separated by ';'; save the file comma-separated",
    ),
    # One column given as both failed in a traceback: 'Field "label" exists 2 times in schema'.
    (
        "the text column also the label column",
        "data.csv",
        _rows(),
        ["--text-column", "label"],
        "--text-column and --label-column both name 'label'; the texts and their labels are two columns",
    ),
    ("NaN label", "data.csv", _rows('"no label here",\n'), [], "have no label"),
    ("a single class", "data.csv", "text,label\n" + "".join(f"good {i},1\n" for i in range(30)), [], "single class"),
    ("label id unseen in training", "data.csv", _rows(), ["--eval-data", "EVAL3"], "out of range for 2 labels"),
    (
        "label name unseen in training",
        "data.csv",
        "text,label\n" + "".join(f"r{i},{'pos' if i % 2 else 'neg'}\n" for i in range(30)),
        ["--eval-data", "EVALNAMES"],
        "Neutral",
    ),
    ("non-UTF-8 bytes", "data.csv", _rows().encode() + "caf\xe9,1\n".encode("latin-1"), [], "re-save it as UTF-8"),
    ("LoRA targets that match nothing", "data.csv", _rows(), ["--lora-targets", "attention_q"], "match no layer"),
    ("only empty texts", "data.csv", "text,label\n" + '"",0\n' * 5 + '"   ",1\n' * 5, [], "is empty or whitespace"),
    ("empty file", "data.csv", "", [], "could not read"),
    ("bad flag value", "data.csv", _rows(), ["--max-length", "many"], "--max-length"),
    # The most common hand-made file: unquoted commas in the text, every row one field too many.
    (
        "unquoted commas in a CSV text",
        "data.csv",
        "text,label\n" + "".join(f"A wonderful, moving film {i}.,{i % 2}\n" for i in range(30)),
        [],
        "line 2 of",
    ),
    (
        "a tag list with a label unseen in training",
        "tags.jsonl",
        TAGS_JSONL,
        ["--eval-data", "EVALTAGS"],
        "not seen in training: 'sarcasm'",
    ),
    (
        "an empty tag inside a tag list",
        "tags.jsonl",
        TAGS_JSONL + '{"text": "nothing to say", "label": ["joy", ""]}\n',
        [],
        "has an empty tag in ['joy', '']",
    ),
    (
        "a tag string without --label-separator",
        "tags.csv",
        "text,label\n" + "".join(f"text {i},{'joy;love' if i % 2 else 'anger'}\n" for i in range(30)),
        ["--problem-type", "multi-label"],
        "pass --label-separator",
    ),
    # two CSVs joined with their headers: "label" would become a class of one text called "text"
    (
        "a header repeated inside the file",
        "data.csv",
        _rows() + "text,label\n" + "".join(f"more text {i},{i % 2}\n" for i in range(30)),
        [],
        "repeats the header (text, label): files joined with their headers? Delete the repeated header lines",
    ),
    # tags joined in one cell, read as classes, would make every combination a class of its own
    (
        "joined tags under --problem-type auto",
        "tags.csv",
        "text,label\n"
        + "".join(f"text {i},{'joy;love' if i % 3 == 0 else ['joy', 'love'][i % 2]}\n" for i in range(30)),
        [],
        "look like joined tags ('joy;love': each part is a label on its own in other rows); pass --label-separator ';'",
    ),
    (
        "a non-numeric regression label",
        "scores.csv",
        "text,label\n" + "".join(f"text {i},{i / 3:.2f}\n" for i in range(30)) + "one more,seven\n",
        ["--problem-type", "regression"],
        "row 31 of",
    ),
    ("a threshold outside 0-1", "tags.jsonl", TAGS_JSONL, ["--threshold", "1.5"], "--threshold"),
    (
        "class weights naming a missing class",
        "data.csv",
        _rows(),
        ["--class-weights", '{"Positive": 3, "Mixed": 2}'],
        "names 'Mixed', not a label",
    ),
    (
        "class weights misspelt",
        "data.csv",
        _rows(),
        ["--class-weights", "autox"],
        "'autox' is not auto, none, balanced, a JSON object or an existing file",
    ),
    (
        "class weights for regression",
        "scores.csv",
        SCORES_CSV,
        ["--class-weights", "balanced"],
        "applies to classification",
    ),
    (
        "label columns that are not 0/1",
        "cols.csv",
        "text,joy,anger\n" + "a,1,2\nb,0,1\n" * 10,
        ["--label-columns", "joy", "anger"],
        "only 0 and 1",
    ),
]


@pytest.mark.parametrize("case, name, content, flags, needle", TRAIN_ERRORS, ids=[c[0] for c in TRAIN_ERRORS])
def test_train_bad_input(tmp_path, tiny_distilbert, capsys, monkeypatch, case, name, content, flags, needle):
    monkeypatch.chdir(tmp_path)
    data = ["--data", str(_write(tmp_path, name, content))] if name else []
    evals = {
        "EVAL3": ("eval.csv", "text,label\nokay,0\nfine,1\nhuh,2\n"),
        "EVALNAMES": ("eval.csv", "text,label\nokay,neg\nfine,pos\nhuh,Neutral\n"),
        "EVALTAGS": ("eval.jsonl", '{"text": "okay", "label": ["joy"]}\n{"text": "oh sure", "label": ["sarcasm"]}\n'),
    }
    flags = [str(_write(tmp_path, *evals[f])) if f in evals else f for f in flags]
    before = set(tmp_path.iterdir())
    code = main(
        [
            "train",
            "--model",
            tiny_distilbert,
            *data,
            "--output-dir",
            "out",
            "--max-length",
            "32",
            "--epochs",
            "1",
            *flags,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("lora-sentiment: error:") and needle in last, last
    assert set(tmp_path.iterdir()) == before  # nothing written


def _no_weights(model):
    (model / "model.safetensors").unlink()


def _no_tokenizer(model):
    for f in model.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special_tokens")):
            f.unlink()


def _broken_config(model):
    (model / "config.json").write_text("{ half a config")


@pytest.mark.parametrize(
    "damage, needle",
    [
        (_no_weights, "has no weights (model.safetensors)"),
        (_no_tokenizer, "has no tokenizer files"),
        (_broken_config, "config.json is not readable JSON"),
    ],
)
def test_a_damaged_model_folder_is_refused_before_the_data(tmp_path, tiny_distilbert, capsys, damage, needle):
    """Refused by its files before the data is read or the baseline fitted (they used to fail on loading, after)."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_distilbert, model)
    damage(model)
    data = _write(tmp_path, "data.csv", _rows())
    code = main(["train", "--model", str(model), "--data", str(data), "--output-dir", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("lora-sentiment: error: --model ") and needle in err, err
    assert "Data:" not in out and "Baseline" not in out, out
    assert not (tmp_path / "out").exists()


# Recoveries: the run goes on, and says what it did.
RECOVERIES = [
    (
        "empty, whitespace and NaN texts are dropped and counted",
        _rows('"",1\n"   ",0\n,1\n'),
        [],
        "Dropped 3 training rows",
    ),
    (
        "a 1 MB review is truncated like any other",
        _rows('"' + "a truly great movie " * 52_000 + '",1\n'),
        [],
        "Saved to",
    ),
    ("emoji and HTML are kept and stripped", _rows('"I <b>loved</b> it 😍🎬<br />truly",1\n'), [], "Saved to"),
    (
        "--max-length above the model's limit is clipped",
        _rows(),
        ["--max-length", "4096"],
        "is above this model's maximum; using 128",
    ),
    (
        "texts with no tag (empty cells of joined tags) are multi-label targets like any other",
        "text,label\n" + "".join(f"comment {i},{['joy|love', '', 'anger'][i % 3]}\n" for i in range(30)),
        ["--label-separator", "|", "--max-length", "32"],
        "labels: anger, joy, love",
    ),
]


@pytest.mark.parametrize("case, content, flags, needle", RECOVERIES, ids=[c[0] for c in RECOVERIES])
def test_train_recovers(tmp_path, tiny_distilbert, capsys, case, content, flags, needle):
    data = _write(tmp_path, "data.csv", content)
    args = [
        "train",
        "--model",
        tiny_distilbert,
        "--data",
        str(data),
        "--output-dir",
        str(tmp_path / "out"),
        "--epochs",
        "1",
    ]
    code = main([*args, *(flags or ["--max-length", "32"])])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert needle in out.out


def _corrupt_weights(run):
    (run / "adapter_model.safetensors").write_bytes(b"not safetensors at all")


def _corrupt_adapter_config(run):
    (run / "adapter_config.json").write_text("{ half a json")


def _pickle_only(run):
    (run / "adapter_model.safetensors").rename(run / "adapter_model.bin")


def _missing_labels(run):
    (run / "labels.json").unlink()


@pytest.mark.parametrize(
    "damage, needle",
    [
        (_corrupt_weights, "could not load the LoRA adapter"),
        (_corrupt_adapter_config, "could not load the LoRA adapter"),
        (_pickle_only, "adapter_model.safetensors is missing"),
        (_missing_labels, "labels.json is missing"),
    ],
)
def test_predict_on_a_damaged_run(tmp_path, trained_run, capsys, damage, needle):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    damage(run)
    assert main(["predict", str(run), "Some text."]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and needle in err.splitlines()[-1]


def test_evaluate_with_labels_the_run_does_not_know(tmp_path, trained_run, capsys):
    data = _write(tmp_path, "eval.csv", "text,label\ngood,Positive\nbad,Negative\nmeh,Neutral\n")
    assert main(["evaluate", str(trained_run), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "Neutral" in err and "or drop them from the evaluation file" in err


HAND_MADE_CSV = "text\nA wonderful, moving film.\nDreadful. Two hours I will never get back.\n"


def test_unquoted_commas_are_refused_in_prediction_and_evaluation(tmp_path, trained_run, capsys, monkeypatch):
    """The issue's reproduction: pandas read row 1's text as " moving film." and left row 2 without one."""
    reviews = _write(tmp_path, "r.csv", HAND_MADE_CSV)
    assert main(["predict", str(trained_run), "--input", str(reviews), "--output", str(tmp_path / "p.csv")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "line 2 of" in last and "has 2 fields but the header has 1" in last and "quote the field" in last
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / ".p.csv.partial").exists()

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(HAND_MADE_CSV))
    assert main(["predict", str(trained_run), "--input", "-", "--input-format", "csv", "--no-progress"]) == 2
    assert "more fields than the header" in capsys.readouterr().err.strip().splitlines()[-1]

    # Excel's "CSV" where the comma is the decimal mark: semicolons, read as one column, and its cause named
    semicolons = _write(tmp_path, "s.csv", "text;label\nA wonderful film;1\nBad;0\n")
    assert main(["evaluate", str(trained_run), "--data", str(semicolons)]) == 2
    assert "s.csv: its header is one column, 'text;label': the fields look separated by ';'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("text;label\nA wonderful film;1\n"))
    assert main(["predict", str(trained_run), "--input", "-", "--input-format", "csv", "--no-progress"]) == 2
    assert "look separated by ';'" in capsys.readouterr().err.strip().splitlines()[-1]

    labelled = _write(tmp_path, "l.csv", "text,label\nA wonderful, moving film.,1\nBad.,0\n")
    assert main(["evaluate", str(trained_run), "--data", str(labelled)]) == 2
    assert "line 2 of" in capsys.readouterr().err.strip().splitlines()[-1]
    quoted = _write(tmp_path, "q.csv", 'text\n"A wonderful, moving film."\nDreadful.\n')
    out = tmp_path / "q-out.csv"
    assert main(["predict", str(trained_run), "--input", str(quoted), "--output", str(out), "--no-progress"]) == 0
    assert pd.read_csv(out)["text"].tolist() == ["A wonderful, moving film.", "Dreadful."]


def test_a_run_trained_on_class_names_refuses_ids_when_evaluated(tmp_path, tiny_distilbert, capsys):
    """The run records that its classes came as names (labels.json), so `evaluate` on a file of ids refuses them as
    training's own evaluation split would, instead of reading them in the names' sorted order."""
    named = _write(tmp_path, "named.csv", _rows().replace(",0\n", ",bad\n").replace(",1\n", ",good\n"))
    run = tmp_path / "run"
    argv = ["train", "--model", tiny_distilbert, "--data", str(named), "--eval-data", str(named), "--output-dir",
            str(run), "--max-length", "32", "--epochs", "1", "--precision", "fp32"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((run / "labels.json").read_text())["labels_given_as"] == "names"
    capsys.readouterr()
    ids = _write(tmp_path, "ids.csv", _rows())
    assert main(["evaluate", str(run), "--data", str(ids)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ids.csv are class ids, but the classes were given as names in training (bad, good)" in last, last
    assert main(["evaluate", str(run), "--data", str(named)]) == 0
    # an export carries the run's labels.json, and with it the check
    assert main(["export", str(run), str(tmp_path / "onnx"), "--format", "onnx"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "onnx"), "--data", str(ids)]) == 2
    assert "are class ids, but the classes were given as names" in capsys.readouterr().err
    # A run saved before labels.json recorded this (0.3): the ids are read in its order, and the log says so once.
    labels = json.loads((run / "labels.json").read_text())
    (run / "labels.json").write_text(json.dumps({k: v for k, v in labels.items() if k != "labels_given_as"}))
    assert main(["evaluate", str(run), "--data", str(ids)]) == 0
    noted = [line for line in capsys.readouterr().err.splitlines() if "saved before runs recorded" in line]
    assert len(noted) == 1 and "ids.csv are class ids, read in the run's order (0 = bad, 1 = good)" in noted[0], noted
    # a dataset's own class names (labels_given_as null) number their classes themselves: nothing to say
    (run / "labels.json").write_text(json.dumps({**labels, "labels_given_as": None}))
    assert main(["evaluate", str(run), "--data", str(ids)]) == 0
    assert "saved before runs recorded" not in capsys.readouterr().err


def test_a_repeated_header_is_refused_in_prediction_files_and_stdin(tmp_path, trained_run, capsys, monkeypatch):
    joined = "text,label\nGood.,1\nBad.,0\ntext,label\nFine.,1\n"
    path, out = _write(tmp_path, "j.csv", joined), tmp_path / "p.csv"
    assert main(["predict", str(trained_run), "--input", str(path), "--output", str(out), "--no-progress"]) == 2
    assert "line 4 of" in capsys.readouterr().err.strip().splitlines()[-1] and not out.exists()
    assert main(["evaluate", str(trained_run), "--data", str(path)]) == 2
    assert "repeats the header (text, label)" in capsys.readouterr().err.strip().splitlines()[-1]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(joined))
    assert main(["predict", str(trained_run), "--input", "-", "--input-format", "csv", "--no-progress"]) == 2
    assert "row 3 of - repeats the header (text, label)" in capsys.readouterr().err.strip().splitlines()[-1]
    # a one-column file whose text is the word "text" is a text, not a header
    single = _write(tmp_path, "s.csv", "text\nGood.\ntext\n")
    assert main(["predict", str(trained_run), "--input", str(single), "--output", str(out), "--no-progress"]) == 0


def test_a_file_of_other_separators_is_refused_naming_them(tmp_path, trained_run, capsys):
    """A tab- or semicolon-separated file named .csv reads as one column; the error says so rather than
    suggesting --text-column, in prediction and evaluation alike."""
    tabs = _write(tmp_path, "t.csv", "text\tlabel\nGood.\t1\nBad.\t0\n")
    semicolons = _write(tmp_path, "s.csv", "text;label\nGood.;1\nBad.;0\n")
    assert main(["predict", str(trained_run), "--input", str(tabs), "--output", str(tmp_path / "p.csv")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "separated by tabs; save the file comma-separated as .csv, or tab-separated as .tsv" in last, last
    assert not (tmp_path / "p.csv").exists()
    assert main(["evaluate", str(trained_run), "--data", str(semicolons)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "separated by ';'" in last and "--text-column" not in last, last


def test_predict_text_edge_cases(trained_classifier):
    texts = ["😍🎬🍿", "<b>bold</b><br />", "a truly great movie " * 52_000, "\u200b", "ﷺ" * 3000, "\x00\x01"]
    probabilities = trained_classifier.predict_proba(texts)
    assert probabilities.shape == (len(texts), 2)
    assert all(math.isclose(sum(row), 1, abs_tol=1e-5) for row in probabilities)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=6))
def test_fuzz_predict_on_arbitrary_unicode(trained_classifier, texts):
    probabilities = trained_classifier.predict_proba(texts)
    assert probabilities.shape == (len(texts), 2)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=80)), min_size=0, max_size=12),
    labels=st.lists(
        st.one_of(st.none(), st.integers(-1, 3), st.sampled_from(["pos", "neg", ""])), min_size=0, max_size=12
    ),
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
)
def test_fuzz_loaders_answer_with_data_or_a_user_error(tmp_path_factory, texts, labels, fmt):
    """Whatever the rows, loading gives usable data or a UserError, never another exception."""
    from lora_sentiment.config import TrainConfig
    from lora_sentiment.data.splits import load_labeled_data
    from lora_sentiment.errors import UserError

    n = min(len(texts), len(labels))
    frame = pd.DataFrame({"text": texts[:n], "label": pd.Series(labels[:n], dtype=object)})
    path = tmp_path_factory.mktemp("fuzz") / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.astype({"label": str}).to_parquet(path)
    try:
        data = load_labeled_data(TrainConfig(data=str(path)), log=lambda _: None)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert len(data.train) > 0 and len(data.label_names) >= 2
    assert all(isinstance(t, str) and t.strip() for t in data.train["text"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(st.none(), st.text(max_size=60)), min_size=0, max_size=10))
def test_fuzz_batch_prediction_round_trips_every_row(tmp_path_factory, trained_classifier, rows):
    from lora_sentiment.batch.files import predict_file

    folder = tmp_path_factory.mktemp("fuzzbatch")
    source, target = folder / "in.jsonl", folder / "out.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    summary = predict_file(trained_classifier, str(source), str(target), progress=False)
    out = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert summary.rows == len(rows) == len(out)
    assert [o["text"] for o in out] == rows
    assert all((o["predicted_label"] is None) == (t is None or not t.strip()) for o, t in zip(out, rows))


def test_pickled_weights_are_refused(tmp_path, tiny_distilbert, small_csv, capsys):
    import shutil

    import torch
    from safetensors.torch import load_file

    model = tmp_path / "pickled"
    shutil.copytree(tiny_distilbert, model)
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    assert main(["train", "--model", str(model), "--data", str(small_csv), "--output-dir", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert "has only pickled weights" in err.splitlines()[-1] and "Baseline" not in out  # before the data
    assert not (tmp_path / "out").exists()


def test_model_code_is_not_run_without_trust_remote_code(tmp_path, tiny_distilbert, small_csv, capsys):
    import shutil

    model = tmp_path / "custom"
    model.mkdir()
    for saved_file in ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):  # as such a model has
        shutil.copy(f"{tiny_distilbert}/{saved_file}", model)
    auto_map = {"AutoConfig": "configuration_x.XConfig", "AutoModelForSequenceClassification": "modeling_x.XModel"}
    (model / "config.json").write_text(json.dumps({"model_type": "x-custom", "auto_map": auto_map}))
    marker = tmp_path / "code-ran"
    for module in ("configuration_x.py", "modeling_x.py"):
        (model / module).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    assert main(["train", "--model", str(model), "--data", str(small_csv), "--output-dir", str(tmp_path / "out")]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err.splitlines()[-1]
    assert not marker.exists()


@pytest.mark.parametrize(
    "command, env, flags, needle",
    [
        (
            "train",
            {"MLFLOW_TRACKING_URI": "file:/tmp/mlruns"},
            ["--report-to", "mlflow"],
            "a file store, which MLflow 3",
        ),
        ("train", {}, ["--report-to", "mlflow", "--mlflow-uri", "./mlruns"], "--mlflow-uri ./mlruns is a file store"),
        ("train", {}, ["--report-to", "mlflow", "--mlflow-uri", "sqlite:///no/such/dir/m.db"], "does not exist"),
        ("train", {"WANDB_MODE": "sometimes"}, ["--report-to", "wandb"], "WANDB_MODE='sometimes' is not a W&B mode"),
        ("tune", {}, ["--storage", "not a url", "--trials", "1"], "--storage not a url is not a database URL"),
        ("tune", {}, ["--storage", "sqlite:////no/such/dir/s.db", "--trials", "1"], "does not exist"),
    ],
)
def test_settings_are_checked_before_any_work(
    tmp_path, tiny_distilbert, capsys, monkeypatch, command, env, flags, needle
):
    """Tracker stores, W&B modes and study databases: refused in one line before the data is read, nothing left."""
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        "lora_sentiment.training.recipe.load_labeled_data", lambda *a, **k: pytest.fail("data was read")
    )
    monkeypatch.setattr("lora_sentiment.training.tuning._objective_metric", lambda *a: pytest.fail("data was read"))
    data = _write(tmp_path, "data.csv", _rows())
    before = set(tmp_path.iterdir())
    argv = [command, "--model", tiny_distilbert, "--data", str(data), "--output-dir", str(tmp_path / "out"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("lora-sentiment: error:"), err
    assert set(tmp_path.iterdir()) == before


def test_a_folder_given_for_an_output_file_is_refused_before_the_work(tmp_path, trained_run, capsys, monkeypatch):
    """A folder given for --output (or --write-clean) with --overwrite was found only when the finished file was to
    be renamed over it: a traceback after the whole prediction or audit."""
    monkeypatch.setattr("lora_sentiment.batch.files.checked_chunks", lambda *a, **k: pytest.fail("input read"))
    texts = _write(tmp_path, "texts.csv", _rows())
    (tmp_path / "out.csv").mkdir()
    for argv, flag in [
        (["predict", str(trained_run), "--input", str(texts), "--output", str(tmp_path / "out.csv"), "--overwrite"],
         "--output"),
        (["audit", "--data", str(texts), "--scorer", "tfidf", "--output-dir", str(tmp_path / "audit"),
          "--write-clean", str(tmp_path / "out.csv"), "--overwrite"], "--write-clean"),
    ]:  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"lora-sentiment: error: {flag} {tmp_path / 'out.csv'} is a folder; give a file path")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "texts.csv"]


def test_a_place_that_cannot_be_written_is_refused_before_the_work(tmp_path, trained_run, tiny_distilbert, capsys,
                                                                   monkeypatch):  # fmt: skip
    """A read-only, full or foreign folder failed in a traceback once the work was done (or, for train, once the
    model had loaded): each command that writes now tries its folder with the settings."""
    import errno

    import lora_sentiment.atomic

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    texts = _write(tmp_path, "texts.csv", _rows())
    audits = tmp_path / "audits"  # an audit's folder is written into, so it is tried inside
    audits.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(lora_sentiment.atomic.tempfile, "mkdtemp", refused)
    out = tmp_path / "nested" / "out"
    for argv, flag in [
        (["train", "--model", tiny_distilbert, "--data", str(texts), "--output-dir", str(out)], "--output-dir"),
        (["predict", str(trained_run), "--input", str(texts), "--output", str(tmp_path / "p.csv")], "--output"),
        (["export", str(trained_run), str(out)], "OUT_DIR"),
        (["audit", "--model", tiny_distilbert, "--data", str(texts), "--output-dir", str(out)], "--output-dir"),
        (["audit", "--model", tiny_distilbert, "--data", str(texts), "--output-dir", str(audits)], "--output-dir"),
    ]:
        assert main(argv) == 2, argv
        last = capsys.readouterr().err.strip().splitlines()[-1]
        where = audits if argv[-1] == str(audits) else tmp_path
        assert last.startswith(f"lora-sentiment: error: {flag} ") and f"cannot write in {where} (Permission" in last
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_place_another_command_is_writing_is_refused_before_the_work(tmp_path, trained_run, tiny_distilbert, capsys,
                                                                        monkeypatch):  # fmt: skip
    """The same command started twice on one --output-dir passed every check in both and then interleaved two runs'
    checkpoints and files (two predictions, their rows in one hidden staging file): the second now ends at once, in
    one line, and writes nothing."""
    monkeypatch.setattr(
        "lora_sentiment.training.recipe.load_labeled_data", lambda *a, **k: pytest.fail("data was read")
    )
    monkeypatch.setattr("lora_sentiment.modeling.model.load_run_model", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setattr("lora_sentiment.batch.files.checked_chunks", lambda *a, **k: pytest.fail("input read"))
    texts = _write(tmp_path, "texts.csv", _rows())
    out, table = tmp_path / "out", tmp_path / "out.csv"
    for argv, flag, place in [
        (["train", "--model", tiny_distilbert, "--data", str(texts), "--output-dir", str(out)], "--output-dir", out),
        (["train", "--model", tiny_distilbert, "--data", str(texts), "--output-dir", str(out), "--folds", "2"],
         "--output-dir", out),
        (["export", str(trained_run), str(out), "--format", "onnx"], "OUT_DIR", out),
        (["audit", "--model", tiny_distilbert, "--data", str(texts), "--output-dir", str(out)], "--output-dir", out),
        (["predict", str(trained_run), "--input", str(texts), "--output", str(table)], "--output", table),
        (["predict", str(trained_run), "--input", str(texts), "--output", str(table), "--runner", "ray"], "--output",
         table),
    ]:  # fmt: skip
        with _held_elsewhere(place, flag):  # another thread: a thread may claim again what it holds
            before = sorted(p.name for p in tmp_path.iterdir())
            assert main(argv) == 2, argv
            assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, the holder's lock kept
        err = capsys.readouterr().err.strip()
        assert err == (
            f"lora-sentiment: error: {flag} {place} is being written by another lora-sentiment command (process "
            f"{os.getpid()}); wait for it to end or choose another {flag}"
        ), err


@contextmanager
def _held_elsewhere(place, flag):
    """`place` claimed by another thread of this process for the block's length."""
    from lora_sentiment.atomic import claimed

    holding, done = threading.Event(), threading.Event()

    def hold():
        with claimed(place, flag):
            holding.set()
            done.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join()
