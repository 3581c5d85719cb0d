import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lora_sentiment.config import TrainConfig
from lora_sentiment.data.encoding import TextEncoder, clean_text
from lora_sentiment.data.loading import load_splits
from lora_sentiment.data.splits import load_labeled_data
from lora_sentiment.errors import UserError


def _config(data, **kwargs) -> TrainConfig:
    return TrainConfig(data=str(data), **kwargs)


def _quiet(_message):
    pass


def _write(frame: pd.DataFrame, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    return path


@pytest.fixture()
def frame(imdb_frames) -> pd.DataFrame:
    train, _ = imdb_frames
    return pd.concat([train[train.label == 0].head(30), train[train.label == 1].head(30)]).reset_index(drop=True)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_file_format_loads_the_same_rows(tmp_path, frame, suffix):
    path = _write(frame[["text", "label"]], tmp_path / f"reviews{suffix}")
    data = load_labeled_data(_config(path, eval_fraction=0.25), log=_quiet)
    assert len(data.train) + len(data.eval) == 60
    assert data.label_names == ["Negative", "Positive"]
    assert sorted(list(data.train["text"]) + list(data.eval["text"])) == sorted(frame.text)
    assert set(data.train.column_names) == {"text", "label"}


def test_shared_sample_train_and_eval_files(imdb_sample):
    data = load_labeled_data(
        _config(
            imdb_sample / "train.parquet",
            eval_data=str(imdb_sample / "validation.parquet"),
            max_train_samples=1000,
            max_eval_samples=500,
        ),
        log=_quiet,
    )
    assert (len(data.train), len(data.eval)) == (1000, 500)
    # stratified: the subsample keeps the 50.8 % / 50.5 % positive shares
    assert abs(np.mean(data.train["label"]) - 0.508) < 0.01
    assert abs(np.mean(data.eval["label"]) - 0.505) < 0.01


def test_subsample_and_carved_split_are_seeded_and_stratified(tmp_path, imdb_frames):
    path = _write(imdb_frames[0][["text", "label"]], tmp_path / "train.parquet")
    first = load_labeled_data(_config(path, max_train_samples=200, eval_fraction=0.1), log=_quiet)
    again = load_labeled_data(_config(path, max_train_samples=200, eval_fraction=0.1), log=_quiet)
    other = load_labeled_data(_config(path, max_train_samples=200, eval_fraction=0.1, seed=7), log=_quiet)
    assert list(first.train["text"]) == list(again.train["text"]) and list(first.eval["text"]) == list(
        again.eval["text"]
    )
    assert list(first.train["text"]) != list(other.train["text"])
    assert len(first.eval) == 200  # 10 % of 2000
    assert abs(np.mean(first.eval["label"]) - 0.508) < 0.02
    assert not set(first.train["text"]) & set(first.eval["text"])


def test_string_labels_get_sorted_ids_and_keep_their_names(tmp_path, frame):
    frame = frame.assign(sentiment=frame.label.map({0: "negative", 1: "positive"}), review=frame.text)[
        ["review", "sentiment"]
    ]
    path = _write(frame, tmp_path / "reviews.csv")
    data = load_labeled_data(_config(path, text_column="review", label_column="sentiment"), log=_quiet)
    assert data.label_names == ["negative", "positive"]
    train = data.train.to_pandas()
    expected = dict(zip(frame.review, frame.sentiment.map({"negative": 0, "positive": 1})))
    assert all(expected[t] == label for t, label in zip(train.text, train.label))


def test_encoding_the_labels_shows_no_progress_bars_of_datasets(tmp_path, frame, capsys, monkeypatch):
    """A user asked for no "Map" or "Casting the dataset" (bars the label encoding showed on every new file), and
    reading a small file needs no bar."""
    import sys

    import datasets

    bars = sys.modules[datasets.enable_progress_bars.__module__]
    frame = frame.assign(label=frame.label.map({0: "negative", 1: "positive"}), text=frame.text)
    path = _write(frame[["text", "label"]], tmp_path / "reviews.csv")
    monkeypatch.setattr(bars, "HF_DATASETS_DISABLE_PROGRESS_BARS", None)  # unset (the suite sets it): a user has bars
    datasets.enable_progress_bars()
    try:
        load_labeled_data(_config(path, eval_data=str(path)), log=_quiet)
        assert capsys.readouterr().err == ""  # nor a bar for reading a small file
        monkeypatch.setattr("lora_sentiment.data.loading.BAR_BYTES", 0)  # a big file: its reading has a bar
        load_labeled_data(_config(_write(frame, tmp_path / "big.csv"), eval_data=str(path)), log=_quiet)
    finally:
        datasets.disable_progress_bars()
    err = capsys.readouterr().err
    assert "Generating train split" in err  # the bars were on
    assert "Map" not in err and "Casting" not in err


def test_eval_file_with_string_labels_maps_onto_training_names(tmp_path, frame):
    train_path = _write(frame[["text", "label"]], tmp_path / "train.csv")
    eval_frame = frame.assign(label=frame.label.map({0: "negative", 1: "positive"}))
    eval_path = _write(eval_frame[["text", "label"]], tmp_path / "eval.jsonl")
    data = load_labeled_data(_config(train_path, eval_data=str(eval_path)), log=_quiet)
    assert list(data.eval["label"]) == frame.label.tolist()


def test_multiclass_labels(tmp_path, frame):
    frame = frame.assign(label=np.arange(len(frame)) % 3)
    path = _write(frame[["text", "label"]], tmp_path / "three.csv")
    data = load_labeled_data(_config(path, label_names=["bad", "ok", "good"]), log=_quiet)
    assert data.label_names == ["bad", "ok", "good"]
    assert set(data.train["label"]) == {0, 1, 2}
    unnamed = load_labeled_data(_config(path), log=_quiet)
    assert unnamed.label_names == ["0", "1", "2"]


def test_empty_texts_are_dropped_with_a_count(tmp_path, frame):
    frame = frame[["text", "label"]].copy()
    frame.loc[0, "text"] = "   "
    frame.loc[1, "text"] = None
    path = _write(frame, tmp_path / "gaps.parquet")
    messages = []
    data = load_labeled_data(_config(path), log=messages.append)
    assert len(data.train) + len(data.eval) == 58
    assert any("Dropped 2 training rows" in m for m in messages)


def _aclimdb(root: Path, frame: pd.DataFrame) -> Path:
    for split in ("train", "test"):
        for i, row in frame.iterrows():
            folder = root / split / ("pos" if row.label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{8 if row.label else 2}.txt").write_text(row.text, encoding="utf-8")
    (root / "train" / "unsup").mkdir()  # ignored, as in the real archive
    return root


def test_aclimdb_folder(tmp_path, frame):
    root = _aclimdb(tmp_path / "aclImdb", frame)
    splits = load_splits(str(root))
    assert set(splits) == {"train", "test"}
    assert splits["train"].features["label"].names == ["Negative", "Positive"]
    assert sorted(splits["train"]["rating"]) == sorted([8 if lbl else 2 for lbl in frame.label])
    data = load_labeled_data(_config(root), log=_quiet)  # test split becomes the eval split
    assert len(data.train) == len(data.eval) == 60


def test_tag_lists_written_as_text_in_a_csv_are_read_as_lists(tmp_path):
    """pandas writes a list column to CSV as "['joy', 'love']": read as strings, each combination of tags became a
    class of its own (refused only by luck, when carving found a combination with one text)."""
    rows = [(f"comment {i}", tags) for i, tags in enumerate([["joy", "love"], ["anger"], [], ["joy"]] * 10)]
    frame = pd.DataFrame({"text": [t for t, _ in rows], "labels": [tags for _, tags in rows]})
    written = tmp_path / "tags.csv"
    frame.to_csv(written, index=False)
    assert "\"['joy', 'love']\"" in written.read_text()
    data = load_labeled_data(_config(written, label_column="labels", eval_data=str(written)), log=_quiet)
    assert data.space.problem_type == "multi-label" and data.space.names == ["anger", "joy", "love"]
    assert data.space.given_as == "names"
    assert np.asarray(data.eval["label"])[:4].tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]]
    ids = tmp_path / "ids.csv"  # ids, and an empty cell for no tags
    cells = ['"[0, 2]"', "[1]", "", "[2]"]
    ids.write_text("text,labels\n" + "".join(f"c{i},{cells[i % 4]}\n" for i in range(40)))
    assert load_labeled_data(_config(ids, label_column="labels"), log=_quiet).space.given_as == "ids"
    for bad, needle in (('"[joy, love]"', "is not a list of names or ids"), ("\"[1, 'joy']\"", "mix names and ids")):
        broken = tmp_path / "broken.csv"
        broken.write_text(written.read_text() + f"one more,{bad}\n")
        with pytest.raises(UserError, match=needle):
            load_labeled_data(_config(broken, label_column="labels"), log=_quiet)
    plain = tmp_path / "plain.csv"  # one label that only looks like a list among others: classes, as before
    plain.write_text("text,label\n" + "".join(f"r{i},{['good', 'bad', '[meh]'][i % 3]}\n" for i in range(30)))
    assert load_labeled_data(_config(plain), log=_quiet).space.names == ["[meh]", "bad", "good"]
    bracketed = tmp_path / "bracketed.csv"  # brackets in every class name, no list among them: classes too
    bracketed.write_text("text,label\n" + "".join(f"r{i},{['[SPAM]', '[HAM]'][i % 2]}\n" for i in range(30)))
    assert load_labeled_data(_config(bracketed), log=_quiet).space.names == ["[HAM]", "[SPAM]"]


def test_one_class_a_text_stored_as_one_item_lists(tmp_path, frame):
    """Many hub datasets keep one class a text as a list of one: auto still reads lists as tags, and says that a
    text had exactly one; --problem-type single-label read them as classes (it refused any list before)."""
    frame = frame.assign(label=[["pos"] if label else ["neg"] for label in frame.label])
    for suffix in (".jsonl", ".parquet"):
        path = _write(frame, tmp_path / f"one{suffix}")
        messages = []
        tags = load_labeled_data(_config(path), log=messages.append)
        assert tags.space.problem_type == "multi-label"
        assert any("exactly one tag" in m and "--problem-type single-label" in m for m in messages), messages
        classes = load_labeled_data(_config(path, problem_type="single-label", eval_data=str(path)), log=_quiet)
        assert classes.space.problem_type == "single-label" and classes.space.names == ["neg", "pos"]
        assert classes.space.given_as == "names"
        assert np.asarray(classes.eval["label"]).tolist() == [0 if items == ["neg"] else 1 for items in frame.label]
    two = _write(frame.assign(label=[["pos", "neg"]] + list(frame.label[1:])), tmp_path / "two.jsonl")
    assert not any("exactly one tag" in m for m in _messages(_config(two)))
    with pytest.raises(UserError, match="several labels per text: use --problem-type multi-label"):
        load_labeled_data(_config(two, problem_type="single-label"), log=_quiet)


def _messages(config) -> list[str]:
    messages = []
    load_labeled_data(config, log=messages.append)
    return messages


def test_a_folder_of_split_files_loads_as_its_splits(tmp_path, frame):
    """train.csv beside validation.jsonl (the shared imdb-sample layout), or a cloned hub repository's shards in
    data/: each file its split, the held-out one evaluated on, as a hub dataset's would be."""
    rows = frame[["text", "label"]]
    plain = tmp_path / "plain"
    plain.mkdir()
    _write(rows.head(40), plain / "train.csv")
    _write(rows.tail(20), plain / "validation.jsonl")
    assert {k: len(v) for k, v in load_splits(str(plain)).items()} == {"train": 40, "validation": 20}
    messages: list[str] = []
    data = load_labeled_data(_config(plain), log=messages.append)
    assert (len(data.train), len(data.eval)) == (40, 20)
    assert f"Evaluation split: the validation split of {plain} (--eval-split picks another)." in messages
    hub = tmp_path / "hub" / "data"
    hub.mkdir(parents=True)
    _write(rows.iloc[:30], hub / "train-00000-of-00002.parquet")
    _write(rows.iloc[30:50], hub / "train-00001-of-00002.parquet")
    _write(rows.iloc[50:], hub / "test-00000-of-00001.parquet")
    splits = load_splits(str(hub.parent))
    assert {k: len(v) for k, v in splits.items()} == {"train": 50, "test": 10}
    assert splits["train"]["text"] == rows.text.iloc[:50].tolist()  # shards in order
    # As --eval-data a folder is scored on its held-out split, never its train split (the first one read).
    data = load_labeled_data(_config(plain, eval_data=str(plain)), log=_quiet)
    assert len(data.eval) == 20
    held_out = tmp_path / "held-out"  # an evaluation folder needs no train file; training from it names its splits
    held_out.mkdir()
    _write(rows.tail(20), held_out / "test.csv")
    assert len(load_labeled_data(_config(plain, eval_data=str(held_out)), log=_quiet).eval) == 20
    with pytest.raises(UserError, match=r"split 'train' not in .*held-out; splits are: test \(set --train-split\)"):
        load_labeled_data(_config(held_out), log=_quiet)


@pytest.mark.parametrize(
    "files, needle",
    [
        (["train.csv", "train.parquet"], "more than one train file (train.csv, train.parquet); pass one file"),
        (["train_small.csv", "train_full.csv"], "holds no train file"),  # read together, one silent training set
        (["reviews.csv"], "holds no train file"),
    ],
)
def test_a_folder_whose_files_are_not_one_split_each_is_refused(tmp_path, frame, files, needle):
    for name in files:
        _write(frame[["text", "label"]], tmp_path / name)
    with pytest.raises(UserError, match=re.escape(needle)):
        load_splits(str(tmp_path))


@pytest.mark.parametrize(
    "make, kwargs, needle",
    [
        (lambda d, f: d / "nope.csv", {}, "not found"),
        (lambda d, f: (d / "notes.txt").write_text("x") and d / "notes.txt", {}, "unsupported data file type"),
        (lambda d, f: _write(f[["text", "label"]], d / "r.csv"), {"text_column": "review"}, "columns are: text, label"),
        (lambda d, f: _write(f[["text", "label"]], d / "r.csv"), {"label_column": "stars"}, "--label-column"),
        (
            lambda d, f: _write(f[["text", "label"]], d / "r.csv"),
            {"text_column": "review", "label_column": "stars"},
            "columns 'review' and 'stars' not found",
        ),
        (lambda d, f: _write(f[["text"]].assign(label=1), d / "r.csv"), {}, "single class"),
        (
            lambda d, f: _write(f[["text"]].assign(label=[np.nan] + [1.0, 0.0] * 29 + [1.0]), d / "r.csv"),
            {},
            "have no label",
        ),
        (lambda d, f: _write(f[["text"]].assign(label=""), d / "r.csv"), {}, "have no label"),
        (lambda d, f: _write(f[["text"]].assign(text="  ", label=f.label), d / "r.csv"), {}, "every text"),
        (
            lambda d, f: _write(f[["text"]].assign(label=f.label * 0.5), d / "r.csv"),
            {"problem_type": "single-label"},
            "class ids",
        ),
        (lambda d, f: (d / "empty").mkdir() or d / "empty", {}, "aclImdb layout"),
        (
            lambda d, f: _write(f[["text"]].assign(label=[["joy"], ["anger", "joy"]] * 30), d / "r.jsonl"),
            {"problem_type": "single-label"},
            "holds list<item: string>; several labels per text: use --problem-type multi-label",
        ),
        (  # an id taken for the text: cast to strings, it trained on "0", "1", ... (predict refuses it too)
            lambda d, f: _write(f[["text", "label"]].assign(id=range(len(f))), d / "r.parquet"),
            {"text_column": "id"},
            "the text column of .*r.parquet holds int64 values, not texts; check --text-column",
        ),
        (
            lambda d, f: (d / "bad.csv").write_bytes(b'text,label\n"unterminated,1\nx,0\n') and d / "bad.csv",
            {},
            "could not read",
        ),
        (lambda d, f: _write(f[["text", "label"]], d / "r.csv"), {"label_names": ["only-one"]}, "out of range"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, frame, make, kwargs, needle):
    path = make(tmp_path, frame)
    with pytest.raises(UserError, match=needle) as info:
        load_labeled_data(_config(path, **kwargs), log=_quiet)
    assert "\n" not in str(info.value)


def test_auto_reads_any_non_integer_number_as_a_value_and_says_so(tmp_path, frame):
    """Ratings divided by 10 have eight distinct values, and none of them can be a class id."""
    scores = frame.assign(label=(frame.label * 6 + np.arange(len(frame)) % 4 + 1) / 10)[["text", "label"]]
    assert scores.label.nunique() == 8 and scores.label.max() == 1.0
    lines = []
    data = load_labeled_data(_config(_write(scores, tmp_path / "s.csv")), log=lines.append)
    assert data.space.problem_type == "regression"
    assert "Problem type: regression, as the labels are numbers that are not all integers" in "\n".join(lines)
    integers = load_labeled_data(_config(_write(frame[["text", "label"]], tmp_path / "i.csv")), log=lines.append)
    assert integers.space.problem_type == "single-label"


def test_unseen_eval_label_is_named(tmp_path, frame):
    train = _write(frame.assign(label=frame.label.map({0: "neg", 1: "pos"}))[["text", "label"]], tmp_path / "t.csv")
    other = _write(frame.assign(label="meh")[["text", "label"]], tmp_path / "e.csv")
    with pytest.raises(UserError, match="'meh'"):
        load_labeled_data(_config(train, eval_data=str(other)), log=_quiet)


def test_unreachable_hub_dataset_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(UserError, match="--data"):
        load_splits("stanfordnlp/imdb-does-not-exist-here")
    assert time.monotonic() - start < 15


def test_hub_dataset_without_network_fails_fast(monkeypatch):
    """Not offline-flagged, but the hub is out of reach: one line within seconds, not a retry loop."""
    import lora_sentiment.hub as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert not hub.hub_reachable(timeout=2)
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot reach the Hugging Face Hub.*--data"):
        load_splits("imdb")
    assert time.monotonic() - start < 15


# ------------------------------------------------------------------------------------------- encoding


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_truncation_strategies(tokenizer):
    text = "alpha beta " + "filler " * 300 + "omega end"
    ids = {}
    for strategy in ("head", "tail", "head+tail"):
        encoded = TextEncoder(tokenizer, 64, strategy, head_tokens=16)([text])
        ids[strategy] = encoded["input_ids"][0]
        assert len(ids[strategy]) <= 64
        assert ids[strategy][0] == tokenizer.cls_token_id and ids[strategy][-1] == tokenizer.sep_token_id
    decoded = {k: tokenizer.decode(v, skip_special_tokens=True) for k, v in ids.items()}
    assert decoded["head"].startswith("alpha beta") and not decoded["head"].endswith("omega end")
    assert decoded["tail"].endswith("omega end") and not decoded["tail"].startswith("alpha")
    assert decoded["head+tail"].startswith("alpha beta") and decoded["head+tail"].endswith("omega end")
    assert len(ids["head+tail"]) >= 62  # the budget is used, give or take a token at the seam


def test_short_texts_are_untouched_and_html_is_stripped(tokenizer):
    encoder = TextEncoder(tokenizer, 64, "head+tail", head_tokens=16)
    plain = TextEncoder(tokenizer, 64, "head", head_tokens=16, strip_html=False)
    assert encoder(["A fine film.<br /><br />Really."])["input_ids"] == plain(["A fine film. Really."])["input_ids"]
    assert clean_text("a<br />b <i>c</i>") == "a b c "


def test_head_tail_on_a_tokenizer_with_other_special_tokens(tiny_roberta):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_roberta)
    encoded = TextEncoder(tok, 40, "head+tail", head_tokens=10)(["start " + _words(200) + " finish"])["input_ids"][0]
    assert len(encoded) <= 40 and encoded[0] == tok.bos_token_id and encoded[-1] == tok.eos_token_id
    assert tok.decode(encoded, skip_special_tokens=True).strip().endswith("finish")


def test_tokenization_is_cached_and_keyed_by_settings(tmp_path, frame, tokenizer):
    from lora_sentiment.data.encoding import tokenize_dataset

    path = _write(frame[["text", "label"]], tmp_path / "cache.parquet")
    data = load_labeled_data(_config(path), log=_quiet)
    first = tokenize_dataset(data.train, TextEncoder(tokenizer, 64, "head+tail", 16))
    again = tokenize_dataset(data.train, TextEncoder(tokenizer, 64, "head+tail", 16))
    other = tokenize_dataset(data.train, TextEncoder(tokenizer, 32, "head+tail", 8))
    assert first._fingerprint == again._fingerprint != other._fingerprint
    assert first.cache_files and first.cache_files == again.cache_files
    assert max(first["length"]) == 64 and max(other["length"]) == 32


@pytest.mark.parametrize("fixture", ["minilm_path", "tiny_roberta"])
def test_head_tail_is_exact_at_the_token_level(request, fixture):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    encoder = TextEncoder(tok, 48, "head+tail", head_tokens=12)
    short = ["A short review.", "Another one, with <b>html</b>."]
    assert encoder(short)["input_ids"] == tok([clean_text(t) for t in short])["input_ids"]  # untouched
    long_text = " ".join(f"word{i}" for i in range(300))
    ids = encoder([long_text])["input_ids"][0]
    body = tok(long_text, add_special_tokens=False)["input_ids"]
    full = tok(long_text)["input_ids"]
    n_special = len(full) - len(body)
    assert len(ids) == 48  # a long text fills max_length exactly
    inner = ids[1 : 1 + len(ids) - n_special] if n_special == 2 else ids
    assert inner == body[:12] + body[len(body) - (48 - n_special - 12) :]
    assert ids[0] == full[0] and ids[-1] == full[-1]


@pytest.mark.parametrize("fixture", ["minilm_path", "tiny_roberta", "tiny_gpt2_no_pad"])
def test_bare_ids_equal_the_tokenizers_own_call(request, imdb_frames, fixture):
    """The Rust batch call the encoder uses gives the wrapper's ids: WordPiece (whose tokenizer.json carries
    a truncation to 128 and a padding of its own), byte-level BPE with and without a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    texts = imdb_frames[1]["text"].head(40).tolist() + ["[CLS] <s> </s> [SEP] <pad>", "", "  émigré naïve 日本 🎬"]
    encoder = TextEncoder(tokenizer, max_length=64)
    padding = "max_length" if tokenizer.pad_token else False
    tokenizer("warm", truncation=True, max_length=8, padding=padding)  # leaves settings on the backend
    expected = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    assert encoder.bare_ids(texts) == expected
    assert max(map(len, expected)) > 128  # not cut by the tokenizer.json's own truncation


@pytest.mark.parametrize("fixture", ["minilm_path", "tiny_roberta"])
@pytest.mark.parametrize("side", ["head", "tail"])
def test_head_or_tail_gives_the_tokenizers_own_truncation(request, imdb_frames, fixture, side):
    """Cut at the token level by the encoder, the ids are the ones transformers' truncation gives."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    texts = [clean_text(t) for t in imdb_frames[1]["text"].head(30)] + ["", "Short."]
    tok.truncation_side = "left" if side == "tail" else "right"
    expected = tok(texts, truncation=True, max_length=40)
    encoded = TextEncoder(tok, 40, side)(texts)
    assert encoded["input_ids"] == expected["input_ids"] and encoded["attention_mask"] == expected["attention_mask"]
    assert sum(len(ids) == 40 for ids in encoded["input_ids"]) >= 25  # most were cut


@pytest.mark.parametrize("fixture", ["minilm_path", "tiny_roberta", "tiny_gpt2_no_pad", "trained_run"])
def test_a_saved_tokenizer_read_without_transformers_encodes_and_pads_the_same(request, tmp_path, imdb_frames, fixture):
    """What an export's predict reads with `tokenizers` alone (SavedTokenizer) gives the ids, padding and pad id
    of transformers' PreTrainedTokenizerFast on the same folder, for every truncation and for windows: WordPiece,
    byte-level BPE with its own pad token, and GPT-2's with the pad token training adds (modeling/model.py)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from lora_sentiment.data.encoding import SavedTokenizer, padded_batches

    folder = Path(request.getfixturevalue(fixture))
    if fixture == "tiny_gpt2_no_pad":
        tok = AutoTokenizer.from_pretrained(folder)
        tok.add_special_tokens({"pad_token": "[PAD]"})
        tok.save_pretrained(folder := tmp_path / "padded")
    reference, saved = PreTrainedTokenizerFast.from_pretrained(str(folder)), SavedTokenizer.open(folder)
    assert saved.pad_token_id == reference.pad_token_id is not None
    assert saved.padding_side == reference.padding_side
    texts = imdb_frames[1]["text"].head(24).tolist() + ["", "  émigré naïve 日本 🎬", "[CLS] <s> </s> [PAD] <pad>"]
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    for truncation in ("head+tail", "head", "tail"):
        ours, theirs = (TextEncoder(t, 48, truncation, head_tokens=16)(texts) for t in (saved, reference))
        assert ours["input_ids"] == theirs["input_ids"] and ours["attention_mask"] == theirs["attention_mask"]
        for (rows_a, a), (rows_b, b) in zip(
            padded_batches(saved, ours, inputs, 8), padded_batches(reference, theirs, inputs, 8), strict=True
        ):
            assert (rows_a == rows_b).all() and a.keys() == b.keys()
            assert all((a[name] == b[name]).all() for name in a)
    windows = [TextEncoder(t, 48).windows(texts, 8) for t in (saved, reference)]
    assert windows[0] == windows[1]


def test_the_file_formats_named_in_the_options_are_the_ones_read_and_written():
    import typing

    from lora_sentiment.data.tables import INPUT_FORMATS, OUTPUT_FORMATS
    from lora_sentiment.options import InputFormat, OutputFormat

    assert set(INPUT_FORMATS.values()) == set(typing.get_args(InputFormat))
    # parquet is written by the ray runner (Ray's own writer), the others by data.tables
    assert set(OUTPUT_FORMATS.values()) | {"parquet"} == set(typing.get_args(OutputFormat))


def test_what_the_cli_fuzzer_found_in_the_data_is_one_clear_error(tmp_path):
    """A text column of lists (JSONL), and too few rows to carve an evaluation split from."""
    lists = tmp_path / "lists.jsonl"
    lists.write_text("".join(json.dumps({"text": ["a", "b"], "label": i % 2}) + "\n" for i in range(6)))
    with pytest.raises(UserError, match="holds list<item: string>, not texts; check --text-column"):
        load_labeled_data(_config(lists), log=_quiet)
    codes = tmp_path / "codes.csv"  # a head of a billion outputs took all memory before this was refused
    codes.write_text("text,label\n" + "".join(f"review {i},{(0, 1000000000, 7)[i % 3]}\n" for i in range(12)))
    with pytest.raises(UserError, match="look like codes, not class ids 0..K-1: they reach 1000000000 but only 3"):
        load_labeled_data(_config(codes), log=_quiet)
    one = tmp_path / "one.csv"
    one.write_text("text,label\na single review,0.5\n")
    with pytest.raises(UserError, match="cannot carve an evaluation split from the 1 training rows"):
        load_labeled_data(_config(one), log=_quiet)
    lonely = tmp_path / "lonely.csv"  # which class is too small to split, by name
    lonely.write_text("text,label\n" + "".join(f"review {i},{('good', 'bad')[i % 2]}\n" for i in range(10)) + "x,meh\n")
    with pytest.raises(UserError, match="from .*lonely.csv: 'meh' has a single example; pass --eval-data"):
        load_labeled_data(_config(lonely), log=_quiet)


def test_evaluation_ids_against_training_names_are_refused_not_guessed(tmp_path):
    """Classes named in training and numbered in the evaluation file: their order is the user's, not the names'
    sorted one, so they are refused; names on both sides, or ids on both, still read."""
    names = ("awful", "meh", "good")
    named = tmp_path / "named.csv"
    named.write_text("text,label\n" + "".join(f"review {i},{names[i % 3]}\n" for i in range(30)))
    ids = tmp_path / "ids.csv"  # the user's numbering: 0 awful, 1 meh, 2 good; sorted names say 1 = good
    ids.write_text("text,label\n" + "".join(f"other {i},{i % 3}\n" for i in range(12)))
    with pytest.raises(UserError, match=r"ids.csv are class ids, but the classes were given as names in training "
                                        r"\(awful, good, meh\): .*\(0 = awful, 1 = good, 2 = meh\)"):  # fmt: skip
        load_labeled_data(_config(named, eval_data=str(ids)), log=_quiet)
    data = load_labeled_data(_config(named, eval_data=str(named)), log=_quiet)
    assert len(data.eval) == 30 and data.space.given_as == "names"
    assert load_labeled_data(_config(ids, eval_data=str(ids)), log=_quiet).space.given_as == "ids"
    sentiment = tmp_path / "sentiment.csv"  # negative / positive are this tool's (and IMDB's) 0 and 1
    sentiment.write_text("text,label\n" + "".join(f"review {i},{('Negative', 'positive')[i % 2]}\n" for i in range(30)))
    two = tmp_path / "two.csv"
    two.write_text("text,label\n" + "".join(f"other {i},{i % 2}\n" for i in range(12)))
    assert list(load_labeled_data(_config(sentiment, eval_data=str(two)), log=_quiet).eval["label"])[:3] == [0, 1, 0]
    bad_good = tmp_path / "bad_good.csv"  # another pair of two: its numbering is the file's to say
    bad_good.write_text("text,label\n" + "".join(f"review {i},{('bad', 'good')[i % 2]}\n" for i in range(30)))
    with pytest.raises(UserError, match=r"\(0 = bad, 1 = good\), the ids would be a guess"):
        load_labeled_data(_config(bad_good, eval_data=str(two)), log=_quiet)
    digits = tmp_path / "digits.jsonl"  # names that are their own ids ("0", "1", "2"): ids read without a guess
    digits.write_text("".join(json.dumps({"text": f"review {i}", "label": str(i % 3)}) + "\n" for i in range(30)))
    assert len(load_labeled_data(_config(digits, eval_data=str(ids)), log=_quiet).eval) == 12


def test_labels_json_tells_a_run_that_records_how_its_labels_came_from_one_saved_before(tmp_path):
    """labels_given_as is written for every classification run, null included (a dataset's own class names), so
    its absence means a run saved before it was recorded; such a run's ids are read in its order with a notice."""
    from lora_sentiment.problems.space import UNRECORDED, LabelSpace

    for given_as in ("names", "ids", None):
        record = LabelSpace("single-label", ["a", "b"], given_as=given_as).to_json()
        assert record["labels_given_as"] == given_as and LabelSpace.from_json(record).given_as == given_as
    old = {"label_names": ["awful", "good", "meh"], "problem_type": "single-label"}
    assert LabelSpace.from_json(old).given_as == UNRECORDED
    assert "labels_given_as" not in LabelSpace.from_json(old).to_json()  # an export of it stays an old record
    assert "labels_given_as" not in LabelSpace("regression", ["score"]).to_json()
    assert LabelSpace.from_json({"label_names": ["score"], "problem_type": "regression"}).given_as is None


def test_evaluation_tag_ids_against_training_tag_names_are_refused_not_guessed(tmp_path):
    """Tag lists too: GoEmotions numbers neutral 27, the sorted names put it at 19, so ids read against names
    would move every tag silently. Names on both sides still read, and the run records how its tags came."""
    tags = ("sadness", "joy", "neutral")  # the user's numbering: 0 sadness, 1 joy, 2 neutral
    named = tmp_path / "named.jsonl"
    named.write_text("".join(json.dumps({"text": f"review {i}", "label": [tags[i % 3]]}) + "\n" for i in range(30)))
    ids = tmp_path / "ids.jsonl"
    ids.write_text("".join(json.dumps({"text": f"other {i}", "label": [i % 3]}) + "\n" for i in range(12)))
    expected = r"ids.jsonl are tag ids, but the tags were given as names in training \(joy, neutral, sadness\): "
    with pytest.raises(UserError, match=expected + r".*\(0 = joy, 1 = neutral, 2 = sadness\)"):
        load_labeled_data(_config(named, eval_data=str(ids), problem_type="multi-label"), log=_quiet)
    data = load_labeled_data(_config(named, eval_data=str(named), problem_type="multi-label"), log=_quiet)
    assert len(data.eval) == 30 and data.space.given_as == "names"
    assert load_labeled_data(_config(ids, eval_data=str(ids)), log=_quiet).space.given_as == "ids"
    joined = tmp_path / "joined.csv"  # tags joined in strings are names as much as a list's are
    joined.write_text("text,label\n" + "".join(f"review {i},{tags[i % 3]};{tags[(i + 1) % 3]}\n" for i in range(30)))
    with pytest.raises(UserError, match=expected):
        load_labeled_data(_config(joined, eval_data=str(ids), label_separator=";"), log=_quiet)
    digits = tmp_path / "digits.csv"  # ids joined in strings ("0;2") are their own numbering: ids read against them
    digits.write_text("text,label\n" + "".join(f"review {i},{i % 3};{(i + 1) % 3}\n" for i in range(30)))
    assert len(load_labeled_data(_config(digits, eval_data=str(ids), label_separator=";"), log=_quiet).eval) == 12


@pytest.mark.parametrize(
    "labels, shown",
    [
        ([" positive", "positive", "negative"], "' positive', 'positive'"),  # "text, label" rows: a space after ','
        (["Positive", "positive", "negative"], "'Positive', 'positive'"),
    ],
)
def test_labels_spelled_two_ways_are_refused_not_trained_as_two_classes(tmp_path, labels, shown):
    path = tmp_path / "spelled.csv"
    path.write_text("text,label\n" + "".join(f'"review {i}",{labels[i % 3]}\n' for i in range(30)))
    with pytest.raises(UserError, match=f"labels in .*spelled.csv differ only in case or spaces: {shown}; write each"):
        load_labeled_data(_config(path), log=_quiet)
    tags = tmp_path / "tags.jsonl"  # tag lists alike
    tags.write_text("".join(json.dumps({"text": f"t {i}", "label": [["joy"], ["Joy"], ["anger"]][i % 3]}) + "\n"
                            for i in range(30)))  # fmt: skip
    with pytest.raises(UserError, match="differ only in case or spaces: 'Joy', 'joy'"):
        load_labeled_data(_config(tags), log=_quiet)


def test_evaluation_labels_match_the_training_names_by_case_and_surrounding_spaces(tmp_path):
    trained, evaluated = tmp_path / "train.csv", tmp_path / "eval.csv"
    pd.DataFrame({"text": [f"r {i}" for i in range(30)], "label": ["positive", "negative"] * 15}).to_csv(trained)
    pd.DataFrame({"text": [f"e {i}" for i in range(3)], "label": [" Positive", "NEGATIVE ", "positive"]}).to_csv(
        evaluated
    )
    data = load_labeled_data(_config(trained, eval_data=str(evaluated)), log=_quiet)
    assert data.space.names == ["negative", "positive"] and list(data.eval["label"]) == [1, 0, 1]


def test_a_label_column_of_texts_or_row_ids_is_refused_not_made_a_class_a_row(tmp_path):
    """--text-column and --label-column swapped (the reviews taken for labels), or a row id taken for the label:
    a class a row, each refused once it is more than half the rows; many small classes are not."""
    swapped = tmp_path / "swapped.csv"
    reviews = [f"A long review number {i}, longer than any class name would be" for i in range(60)]
    pd.DataFrame({"sentiment": ["good", "bad"] * 30, "review": reviews}).to_csv(swapped, index=False)
    config = _config(swapped, text_column="sentiment", label_column="review")
    with pytest.raises(UserError, match=r"swapped.csv has 60 different values in 60 rows \(e.g. 'A long review "
                                        r"number 0, longer than any…'\), as texts or ids do, not classes: check "
                                        r"--label-column and --text-column$"):  # fmt: skip
        load_labeled_data(config, log=_quiet)
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"text": reviews, "label": range(60)}).to_csv(ids, index=False)
    with pytest.raises(UserError, match="60 different values in 60 rows .* or pass --problem-type regression"):
        load_labeled_data(_config(ids), log=_quiet)
    intents = tmp_path / "intents.csv"  # 25 classes of 4 texts each: a class a quarter of the rows, not a row
    pd.DataFrame({"text": [f"ask {i}" for i in range(100)], "label": [f"intent {i % 25}" for i in range(100)]}).to_csv(
        intents, index=False
    )
    assert len(load_labeled_data(_config(intents, eval_fraction=0.25), log=_quiet).space.names) == 25


def test_json_lines_are_read_by_our_own_reader_with_one_line_errors(tmp_path):
    """JSONL is parsed line by line (not by pyarrow's JSON reader, which once crashed the process): columns are
    the union of the keys, U+2028 inside a string is not a line end, a BOM and CRLF are fine, a JSON array of
    objects is read too, and each malformed line is named."""
    good = tmp_path / "good.jsonl"
    good.write_bytes(
        b'\xef\xbb\xbf{"text": "a\\u2028b", "label": 0}\r\n\n{"text": "c", "label": 1, "extra": [1, 2]}\r\n'
    )
    train = load_splits(str(good))["train"]
    assert train["text"] == ["a\u2028b", "c"] and train["label"] == [0, 1] and train["extra"] == [None, [1, 2]]
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"text": "a", "label": 0}, {"text": "b", "label": 1}]))
    assert load_splits(str(array))["train"]["label"] == [0, 1]
    cases = {
        '{"text": "a", "label": 0}\n{"text": "b",\n': "line 2 of .* is not valid JSON",
        '{"text": "a", "label": 0}\n[1, 2]\n': "line 2 of .* is a JSON list, not an object",
        '{"text": "a", "label": 0}\n{"text": "b", "label": "x"}\n': "column 'label' of .* mixes kinds of values",
        "\n\n": "has no rows",
    }
    for number, (content, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{number}.jsonl"
        bad.write_text(content)
        with pytest.raises(UserError, match=message):
            load_splits(str(bad))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"text": "caf\xe9", "label": 0}\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8 text"):
        load_splits(str(latin))
