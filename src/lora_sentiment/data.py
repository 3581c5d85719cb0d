"""Data stage: load hub datasets, local files or an aclImdb folder into clean `text` / `label` splits,
and turn texts into token ids the same way for training and prediction.

`datasets` is imported inside the functions that build datasets: prediction needs only `TextEncoder`, and
`import datasets` would add about 0.6 s to every `predict` command's start-up."""

from __future__ import annotations

import csv
import inspect
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .config import TrainConfig
from .errors import UserError, first_line
from .hub import load_with_fallback
from .labels import SENTIMENT_NAMES, check_trainable, combine_label_columns, detect_problem_type, encode_targets
from .problem import LabelSpace

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
ACLIMDB_LABELS = {"neg": 0, "pos": 1}
_HTML_TAG = re.compile(r"<[^>]{0,100}>")
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass
class LabeledData:
    train: Any  # datasets.Dataset with columns text (str) and label (class id, multi-hot floats or a number)
    eval: Any
    space: LabelSpace
    dropped_empty: dict[str, int]

    @property
    def label_names(self) -> list[str]:
        return self.space.names


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
    if builder == "csv":
        check_field_counts(path, "\t" if suffix == ".tsv" else ",")
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


def check_field_counts(path: Path, separator: str) -> None:
    """Refuse a row with more fields than the header. pandas would silently take the extra leading field as
    the row's index ("A wonderful, moving film." read as " moving film."): a misread, not an error."""
    csv.field_size_limit(2**31 - 1)  # one review can be megabytes long; the default limit is 128 KiB
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=separator)
        header = next(reader, None)
        if not header:
            return
        for row in reader:
            if len(row) > len(header):
                what = "TSV" if separator == "\t" else "CSV"
                raise UserError(
                    f"line {reader.line_num} of {path} has {len(row)} fields but the header has {len(header)}: "
                    f'quote the field that contains the separator ("..."), or use TSV or JSONL instead of {what}'
                )


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


def select_text_label(
    ds: Any, text_column: str, label_column: str | None, where: str, label_columns: Sequence[str] | None = None
) -> Any:
    """Keep only the text and label columns, renamed to `text` / `label` (several --label-columns become one
    multi-hot `label`); name the existing columns if one is absent."""
    wanted = [(text_column, "--text-column")]
    if label_columns:
        wanted += [(column, "--label-columns") for column in label_columns]
    elif label_column:
        wanted.append((label_column, "--label-column"))
    for column, flag in wanted:
        if column not in ds.column_names:
            raise UserError(
                f"column {column!r} not found in {where}; columns are: {', '.join(ds.column_names)} (set {flag})"
            )
    ds = ds.select_columns([c for c, _ in wanted])
    if label_columns:
        ds = combine_label_columns(ds, label_columns, where)
    renames = {text_column: "text", **({label_column: "label"} if label_column and not label_columns else {})}
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


def stratified_sample(ds: Any, n: int | None, seed: int) -> Any:
    """A seeded subsample of n rows with the label shares of `ds` (all rows when n >= len)."""
    if n is None or n >= len(ds):
        return ds
    try:
        return ds.train_test_split(train_size=n, stratify_by_column="label", seed=seed)["train"]
    except ValueError:  # a class too rare to stratify: fall back to a plain seeded sample
        return ds.shuffle(seed=seed).select(range(n))


def load_labeled_data(config: TrainConfig, log: Callable[[str], None] = print) -> LabeledData:
    """Train and eval splits with `text` and an encoded `label`, cleaned, subsampled, checked."""
    splits = load_splits(config.data, data_config=config.data_config)
    where = config.data
    if config.train_split not in splits:
        raise UserError(
            f"split {config.train_split!r} not in {where}; splits are: {', '.join(splits)} (set --train-split)"
        )
    train, dropped_train = _labeled_split(splits[config.train_split], config, where)
    problem_type = detect_problem_type(
        train, config.problem_type, separator=config.label_separator, label_columns=config.label_columns
    )
    names = config.label_columns or config.label_names
    if problem_type == "regression":
        names = names or [config.label_column]  # the number is named after its column
    train, space = encode_targets(train, problem_type, where, given_names=names, separator=config.label_separator)
    eval_ds, eval_where = _eval_source(splits, config, where)
    dropped_eval = 0
    if eval_ds is None:
        train, eval_ds = _carve_eval(train, space, config, where)
        kind = "a stratified" if space.problem_type == "single-label" else "a random"
        log(f"No evaluation split: carved {kind} {config.eval_fraction:.0%} of train ({len(eval_ds)} rows).")
    else:
        eval_ds, dropped_eval = _labeled_split(eval_ds, config, eval_where)
        eval_ds, _ = encode_targets(eval_ds, problem_type, eval_where, space=space, separator=config.label_separator)
    for dropped, name in ((dropped_train, "training"), (dropped_eval, "evaluation")):
        if dropped:
            log(f"Dropped {dropped} {name} rows with an empty or whitespace-only text.")
    train = stratified_sample(train, config.max_train_samples, config.seed)
    eval_ds = stratified_sample(eval_ds, config.max_eval_samples, config.seed)
    check_trainable(train, space, where)
    return LabeledData(train, eval_ds, space, {"train": dropped_train, "eval": dropped_eval})


def _labeled_split(ds: Any, config: TrainConfig, where: str) -> tuple[Any, int]:
    ds = select_text_label(ds, config.text_column, config.label_column, where, config.label_columns)
    return drop_empty_texts(ds, where)


def _eval_source(splits: Any, config: TrainConfig, where: str) -> tuple[Any, str]:
    """The evaluation split: --eval-data, --eval-split, the data's own validation/test split, or None."""
    if config.eval_data is not None:
        eval_splits = load_splits(config.eval_data)
        if "test" in eval_splits and len(eval_splits) > 1:
            return eval_splits["test"], config.eval_data
        return next(iter(eval_splits.values())), config.eval_data
    if config.eval_split is not None:
        if config.eval_split not in splits:
            raise UserError(
                f"split {config.eval_split!r} not in {where}; splits are: {', '.join(splits)} (set --eval-split)"
            )
        return splits[config.eval_split], f"{where} [{config.eval_split}]"
    auto = next((s for s in ("validation", "test") if s in splits and s != config.train_split), None)
    return (splits[auto], f"{where} [{auto}]") if auto else (None, where)


def _carve_eval(train: Any, space: LabelSpace, config: TrainConfig, where: str) -> tuple[Any, Any]:
    """A seeded share of train held out; stratified by class for single-label data."""
    stratify = None
    if space.problem_type == "single-label":
        counts = np.bincount(np.asarray(train["label"]), minlength=len(space.names))
        if (counts[counts > 0] < 2).any():
            raise UserError(
                f"cannot carve an evaluation split from {where}: a class has a single example; pass --eval-data"
            )
        stratify = "label"
    parts = train.train_test_split(test_size=config.eval_fraction, stratify_by_column=stratify, seed=config.seed)
    return parts["train"], parts["test"]


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
            for tokens in self.bare_ids(texts)
        ]
        return self._features(ids)

    def bare_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids without special tokens or truncation, as tokenizer(texts,
        add_special_tokens=False) gives them. A fast tokenizer's own batch call without offsets tokenizes
        twice as fast (BENCHMARKS.md, GPU); the settings the wrapper resets on every call are reset here too
        (a tokenizer.json may carry a truncation and a padding of its own)."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or not hasattr(backend, "encode_batch_fast"):
            return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        if backend.truncation is not None:
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
        return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]

    def encode(
        self, texts: Sequence[str], long_text: str = "truncate", stride: int | None = None
    ) -> tuple[dict[str, list], list[int]]:
        """Model inputs for `texts` and which text each came from: one per text, cut by the run's truncation
        (`truncate`), or every window of every text (`chunks`; see `windows` and `mean_by_text`)."""
        if long_text == "chunks":
            return self.windows(texts, stride)
        return self(list(texts)), list(range(len(texts)))

    def windows(self, texts: Sequence[str], stride: int | None = None) -> tuple[dict[str, list], list[int]]:
        """Every token of every text, in windows of at most max_length tokens (special tokens included) that
        overlap by `stride` tokens [a quarter of the window]; also which text each window came from."""
        texts = [clean_text(t) if self.strip_html else t for t in texts]
        prefix, suffix = self._special_tokens()
        budget = self.max_length - len(prefix) - len(suffix)
        overlap = budget // 4 if stride is None else stride
        if not 0 <= overlap < budget:
            raise UserError(f"--stride must be at least 0 and below the window of {budget} tokens")
        ids, owners = [], []
        for owner, tokens in enumerate(self.bare_ids(texts)):
            starts = range(0, max(len(tokens) - overlap, 1), budget - overlap)
            ids += [prefix + tokens[start : start + budget] + suffix for start in starts]
            owners += [owner] * len(starts)
        return self._features(ids), owners

    def _features(self, ids: list[list[int]]) -> dict[str, list]:
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


def mean_by_text(outputs: np.ndarray, owners: Sequence[int], count: int) -> np.ndarray:
    """Per text, the mean of its windows' outputs (logits): how `--long-text chunks` reads a long text."""
    pooled = np.zeros((count, outputs.shape[1]), dtype=np.float64)
    np.add.at(pooled, np.asarray(owners, dtype=int), outputs)
    return (pooled / np.bincount(owners, minlength=count)[:, None]).astype(np.float32)


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


def padded_batch(
    encoded: dict[str, list], index: np.ndarray, pad_id: int, left: bool, multiple: int | None
) -> dict[str, np.ndarray]:
    """Rows `index` of `encoded` as int64 arrays padded to the longest (rounded up to `multiple`): what
    tokenizer.pad gives, without its per-row Python work (ten times faster at a batch of 256)."""
    lengths = [len(encoded["input_ids"][i]) for i in index]
    width = max(lengths)
    if multiple:
        width = -(-width // multiple) * multiple
    batch = {}
    for key, rows in encoded.items():
        array = np.full((len(index), width), pad_id if key == "input_ids" else 0, dtype=np.int64)
        for r, (i, length) in enumerate(zip(index, lengths)):
            if left:
                array[r, width - length :] = rows[i]
            else:
                array[r, :length] = rows[i]
        batch[key] = array
    return batch
