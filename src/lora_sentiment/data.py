"""Data stage: load hub datasets, local files or an aclImdb folder into clean `text` / `label` splits,
and turn texts into token ids the same way for training and prediction.

`datasets` is imported inside the functions that build datasets: prediction needs only `TextEncoder`, and
`import datasets` would add about 0.6 s to every `predict` command's start-up."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import TrainConfig
from .errors import UserError, first_line
from .hub import load_with_fallback

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
ACLIMDB_LABELS = {"neg": 0, "pos": 1}
SENTIMENT_NAMES = ["Negative", "Positive"]
# Hub datasets often call the two sentiment classes neg/pos; users read Negative/Positive.
_PRETTY_NAMES = {"neg": "Negative", "negative": "Negative", "pos": "Positive", "positive": "Positive"}
_HTML_TAG = re.compile(r"<[^>]{0,100}>")
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass
class LabeledData:
    train: Any  # datasets.Dataset with columns text (str) and label (ClassLabel)
    eval: Any
    label_names: list[str]
    dropped_empty: dict[str, int]


# ---------------------------------------------------------------------------------------------- loading


def load_splits(source: str, *, data_config: str | None = None) -> Any:
    """A DatasetDict from a hub name, a local file (one split: train) or an aclImdb folder."""
    import datasets

    path = Path(source).expanduser()
    if path.is_dir():
        return _load_aclimdb(path)
    if path.suffix.lower() in FILE_BUILDERS and not path.exists():
        raise UserError(f"data file not found: {source} (check the --data / --eval-data path)")
    if path.exists():
        return datasets.DatasetDict({"train": _load_file(path)})
    if source.startswith((".", "/", "~")) or path.suffix:
        raise UserError(
            f"data path not found: {source}; --data takes a {'/'.join(sorted(set(FILE_BUILDERS)))} file, "
            "an aclImdb folder or a hub dataset name"
        )

    def load_from_hub(**_: Any) -> Any:
        return datasets.load_dataset(source, data_config)

    try:
        return load_with_fallback("dataset", source, "--data", load_from_hub, cache_kwarg=None)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"could not load dataset {source!r}: {first_line(exc)}") from exc


def _load_file(path: Path) -> Any:
    import datasets

    suffix = path.suffix.lower()
    builder = FILE_BUILDERS.get(suffix)
    if builder is None:
        raise UserError(
            f"unsupported data file type {suffix or '(none)'!r} for {path}; use one of {', '.join(FILE_BUILDERS)}"
        )
    kwargs: dict[str, Any] = {"sep": "\t"} if suffix == ".tsv" else {}
    try:
        with _quiet_datasets_logger():  # its CSV reader logs a traceback of its own before raising
            loaded = datasets.load_dataset(builder, data_files={"train": str(path)}, split="train", **kwargs)
    except Exception as exc:  # the builders raise many types (ParserError, ArrowInvalid, UnicodeDecodeError...)
        cause = exc.__cause__ or exc.__context__ or exc
        raise UserError(
            f"could not read {path} as {suffix[1:]}: {first_line(cause)} ({read_error_fix(cause)})"
        ) from exc
    if len(loaded) == 0:
        raise UserError(f"data file {path} has no rows")
    return loaded


@contextmanager
def _quiet_datasets_logger() -> Iterator[None]:
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_error_fix(error: BaseException) -> str:
    """The likely fix for a file that would not parse, by what went wrong."""
    if isinstance(error, UnicodeDecodeError):
        return "the file is not UTF-8 text: re-save it as UTF-8"
    text = str(error)
    if "Expected" in text and "fields" in text:
        return "fix or remove that row; quote fields that contain the separator"
    return "check that the file is complete and in the format its extension says"


def _load_aclimdb(root: Path) -> Any:
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "rating": datasets.Value("int32"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=SENTIMENT_NAMES),
        }
    )
    splits = {}
    for split in ("train", "test"):
        rows: dict[str, list] = {"id": [], "rating": [], "text": [], "label": []}
        for folder, label in ACLIMDB_LABELS.items():
            for file in sorted((root / split / folder).glob("*.txt")):
                review_id, _, rating = file.stem.partition("_")
                rows["id"].append(file.stem)
                rows["rating"].append(int(rating) if rating.isdigit() else -1)
                rows["text"].append(file.read_text(encoding="utf-8", errors="replace"))
                rows["label"].append(label)
        if rows["text"]:
            splits[split] = datasets.Dataset.from_dict(rows, features=features)
    if "train" not in splits:
        raise UserError(
            f"folder {root} is not in the aclImdb layout (expected train/pos/*.txt and train/neg/*.txt); "
            "pass that folder or a data file with --data"
        )
    return datasets.DatasetDict(splits)


# ------------------------------------------------------------------------------------------- cleaning


def select_text_label(ds: Any, text_column: str, label_column: str | None, where: str) -> Any:
    """Keep only the text (and label) columns, renamed to `text` / `label`; name the existing ones if absent."""
    wanted = [(text_column, "--text-column")] + ([(label_column, "--label-column")] if label_column else [])
    for column, flag in wanted:
        if column not in ds.column_names:
            raise UserError(
                f"column {column!r} not found in {where}; columns are: {', '.join(ds.column_names)} (set {flag})"
            )
    ds = ds.select_columns([c for c, _ in wanted])
    renames = {text_column: "text", **({label_column: "label"} if label_column else {})}
    renames = {old: new for old, new in renames.items() if old != new}
    if renames:
        # A column already called text/label that we are not using would collide: drop it first.
        ds = ds.remove_columns([new for new in renames.values() if new in ds.column_names and new not in renames])
        ds = ds.rename_columns(renames)
    return ds


def drop_empty_texts(ds: Any, where: str) -> tuple[Any, int]:
    """Drop rows whose text is missing or whitespace-only; return how many went."""
    import datasets

    column = ds.data.column("text")
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        ds = ds.cast_column("text", datasets.Value("string"))
        column = ds.data.column("text")
    # Chunk by chunk: trimming the whole memory-mapped column at once would copy all of its text into RAM.
    empty = np.concatenate(
        [np.zeros(0, dtype=bool)]
        + [
            np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(chunk), ""), True), dtype=bool)
            for chunk in column.chunks
        ]
    )
    n_empty = int(empty.sum())
    if n_empty == 0:
        return ds, 0
    if n_empty == len(ds):
        raise UserError(f"every text in {where} is empty or whitespace; check --text-column")
    keep = np.flatnonzero(~empty)
    return ds.select(keep), n_empty


def encode_labels(ds: Any, where: str, names: Sequence[str] | None = None, given_names: Sequence[str] | None = None):
    """Turn the `label` column into a ClassLabel; return (dataset, label names).

    With `names` (from the training split or a saved run), labels are matched to those names or ids.
    Otherwise: ClassLabel names are kept, strings are sorted into ids, integers keep their ids.
    """
    import datasets

    feature = ds.features["label"]
    if isinstance(feature, datasets.ClassLabel):
        found_names = [_PRETTY_NAMES.get(n.lower(), n) for n in feature.names]
        if names is None:
            names = list(given_names) if given_names else found_names
            return ds.cast_column("label", datasets.ClassLabel(names=list(names))), list(names)
        ds = ds.cast_column("label", datasets.Value("int64")).map(_ids_to_names(found_names), batched=True)
        return encode_labels(ds, where, names)

    column = ds.data.column("label")
    _refuse_missing_labels(column, where)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        ds, names = _encode_label_names(ds, column, where, names)
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        names = _check_label_ids(column, where, names, given_names)
        ds = ds.cast_column("label", datasets.Value("int64"))
    else:
        raise UserError(f"label column in {where} has unsupported type {column.type}; use integers or strings")
    if given_names is not None and len(given_names) != len(names):
        raise UserError(f"--label-names gives {len(given_names)} names but the data has {len(names)} labels")
    return ds.cast_column("label", datasets.ClassLabel(names=list(names))), list(names)


def _refuse_missing_labels(column: Any, where: str) -> None:
    n_missing = column.null_count
    if pa.types.is_floating(column.type):
        n_missing += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    if n_missing:
        raise UserError(
            f"{n_missing} rows in {where} have no label (empty or NaN); fill or drop them, or check --label-column"
        )


def _encode_label_names(ds: Any, column: Any, where: str, names: Sequence[str] | None) -> tuple[Any, list[str]]:
    """String labels to ids: sorted when no names are known yet, else matched to them (case-insensitively)."""
    values = [str(v) for v in pc.unique(column).to_pylist()]
    names = list(names) if names is not None else sorted(values)
    lookup = {n: i for i, n in enumerate(names)}
    lookup.update({n.lower(): i for i, n in enumerate(names) if n.lower() not in lookup})
    unknown = sorted(v for v in values if v not in lookup and v.lower() not in lookup)
    if unknown:
        raise UserError(
            f"labels in {where} not seen in training: {', '.join(map(repr, unknown[:5]))}; "
            f"known labels are: {', '.join(names)}"
        )
    return ds.map(_names_to_ids(lookup), batched=True), names


def _check_label_ids(
    column: Any, where: str, names: Sequence[str] | None, given_names: Sequence[str] | None
) -> list[str]:
    """Integer labels must be ids 0..K-1; binary ones are named Negative/Positive unless names are given."""
    as_float = pc.cast(column, pa.float64()).to_numpy()
    if not np.all(np.equal(np.mod(as_float, 1), 0)) or as_float.min() < 0:
        raise UserError(
            f"labels in {where} must be class ids 0, 1, 2, ... or class names; "
            f"found {as_float.min():g}..{as_float.max():g}"
        )
    top = int(as_float.max())
    if names is None:
        count = top + 1
        names = list(given_names) if given_names else SENTIMENT_NAMES if count <= 2 else [str(i) for i in range(count)]
    if top >= len(names):
        raise UserError(
            f"label id {top} in {where} is out of range for {len(names)} labels ({', '.join(names)}); "
            "set --label-names or check --label-column"
        )
    return list(names)


def _names_to_ids(lookup: dict[str, int]):
    return partial(_map_names, lookup=lookup)


def _map_names(batch: dict, lookup: dict[str, int]) -> dict:
    return {"label": [lookup[v] if v in lookup else lookup[v.lower()] for v in batch["label"]]}


def _ids_to_names(names: list[str]):
    return partial(_map_ids, names=names)


def _map_ids(batch: dict, names: list[str]) -> dict:
    return {"label": [names[int(i)] for i in batch["label"]]}


def stratified_sample(ds: Any, n: int | None, seed: int) -> Any:
    """A seeded subsample of n rows with the label shares of `ds` (all rows when n >= len)."""
    if n is None or n >= len(ds):
        return ds
    try:
        return ds.train_test_split(train_size=n, stratify_by_column="label", seed=seed)["train"]
    except ValueError:  # a class too rare to stratify: fall back to a plain seeded sample
        return ds.shuffle(seed=seed).select(range(n))


def load_labeled_data(config: TrainConfig, log=print) -> LabeledData:
    """Train and eval splits with `text` (str) and `label` (ClassLabel), cleaned, subsampled, checked."""
    splits = load_splits(config.data, data_config=config.data_config)
    where = config.data
    if config.train_split not in splits:
        raise UserError(
            f"split {config.train_split!r} not in {where}; splits are: {', '.join(splits)} (set --train-split)"
        )
    train = select_text_label(splits[config.train_split], config.text_column, config.label_column, where)
    train, dropped_train = drop_empty_texts(train, where)
    train, names = encode_labels(train, where, given_names=config.label_names)

    if config.eval_data is not None:
        eval_splits = load_splits(config.eval_data)
        eval_ds, eval_where = next(iter(eval_splits.values())), config.eval_data
        if "test" in eval_splits and len(eval_splits) > 1:
            eval_ds = eval_splits["test"]
    elif config.eval_split is not None:
        if config.eval_split not in splits:
            raise UserError(
                f"split {config.eval_split!r} not in {where}; splits are: {', '.join(splits)} (set --eval-split)"
            )
        eval_ds, eval_where = splits[config.eval_split], f"{where} [{config.eval_split}]"
    else:
        auto = next((s for s in ("validation", "test") if s in splits and s != config.train_split), None)
        eval_ds, eval_where = (splits[auto], f"{where} [{auto}]") if auto else (None, where)

    dropped_eval = 0
    if eval_ds is None:
        counts = np.bincount(np.asarray(train["label"]), minlength=len(names))
        if (counts[counts > 0] < 2).any():
            raise UserError(
                f"cannot carve an evaluation split from {where}: a class has a single example; pass --eval-data"
            )
        parts = train.train_test_split(test_size=config.eval_fraction, stratify_by_column="label", seed=config.seed)
        train, eval_ds = parts["train"], parts["test"]
        log(f"No evaluation split: carved a stratified {config.eval_fraction:.0%} of train ({len(eval_ds)} rows).")
    else:
        eval_ds = select_text_label(eval_ds, config.text_column, config.label_column, eval_where)
        eval_ds, dropped_eval = drop_empty_texts(eval_ds, eval_where)
        eval_ds, _ = encode_labels(eval_ds, eval_where, names=names)

    for dropped, name in ((dropped_train, "training"), (dropped_eval, "evaluation")):
        if dropped:
            log(f"Dropped {dropped} {name} rows with an empty or whitespace-only text.")

    train = stratified_sample(train, config.max_train_samples, config.seed)
    eval_ds = stratified_sample(eval_ds, config.max_eval_samples, config.seed)
    present = np.unique(np.asarray(train["label"]))
    if len(present) < 2:
        raise UserError(
            f"training data in {where} has a single class ({names[int(present[0])]}); a classifier needs two or more"
        )
    return LabeledData(train, eval_ds, names, {"train": dropped_train, "eval": dropped_eval})


# --------------------------------------------------------------------------------------- tokenization


def clean_text(text: str) -> str:
    return _SPACES.sub(" ", _HTML_TAG.sub(" ", text))


@dataclass
class TextEncoder:
    """Texts -> token ids, identical at training and prediction time."""

    tokenizer: Any
    max_length: int
    truncation: str = "head+tail"
    head_tokens: int = 128
    strip_html: bool = True

    @classmethod
    def for_config(cls, tokenizer: Any, config: TrainConfig) -> TextEncoder:
        """The encoder a run's settings describe: the same at training and at prediction time."""
        return cls(tokenizer, config.max_length, config.truncation, config.head_token_count, config.strip_html)

    def __call__(self, texts: Sequence[str]) -> dict[str, list]:
        texts = [clean_text(t) if self.strip_html else t for t in texts]
        if self.truncation == "head+tail":
            return self._head_and_tail(texts)
        previous, self.tokenizer.truncation_side = (
            self.tokenizer.truncation_side,
            "left" if self.truncation == "tail" else "right",
        )
        try:
            return dict(self.tokenizer(texts, truncation=True, max_length=self.max_length))
        finally:
            self.tokenizer.truncation_side = previous

    def _head_and_tail(self, texts: list[str]) -> dict[str, list]:
        """Keep the first `head_tokens` and the last tokens of long texts (Sun et al. 2019).

        Tokenized once, cut at the token level, then wrapped in the tokenizer's own special tokens: a long
        text comes out at exactly max_length tokens, a short one exactly as the tokenizer encodes it."""
        prefix, suffix = self._special_tokens()
        budget = self.max_length - len(prefix) - len(suffix)
        head = min(self.head_tokens, budget)
        tail = budget - head
        ids = [
            prefix + (tokens if len(tokens) <= budget else tokens[:head] + tokens[len(tokens) - tail :]) + suffix
            for tokens in self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        ]
        encoded: dict[str, list] = {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}
        if "token_type_ids" in self.tokenizer.model_input_names:
            encoded["token_type_ids"] = [[0] * len(row) for row in ids]
        return encoded

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after a single text ([CLS] / [SEP], <s> / </s>, ...)."""
        bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("a")["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], full[start + len(bare) :]
        raise UserError(
            "--truncation head+tail cannot tell this tokenizer's special tokens apart; use --truncation tail or head"
        )


def tokenize_dataset(ds: Any, encoder: TextEncoder) -> Any:
    """Tokenize once with datasets.map (cached on disk when the dataset is file-backed)."""
    return ds.map(
        _encode_batch,
        fn_kwargs={"encoder": encoder},
        batched=True,
        remove_columns=["text"],
        desc="Tokenizing",
        new_fingerprint=_tokenized_fingerprint(ds, encoder),
    )


def _tokenized_fingerprint(ds: Any, encoder: TextEncoder) -> str:
    # datasets hashes an importable function by its name, not its code: an upgraded tokenization would be
    # served from a stale cache. The source of the code that produces the ids is part of the key instead.
    from datasets.fingerprint import Hasher

    code = inspect.getsource(TextEncoder) + inspect.getsource(_encode_batch) + inspect.getsource(clean_text)
    return Hasher.hash([ds._fingerprint, code, encoder])


def _encode_batch(batch: dict, encoder: TextEncoder) -> dict:
    encoded = encoder(batch["text"])
    # Trainer's length-grouped sampler reads this column instead of measuring every row again.
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
    return encoded
