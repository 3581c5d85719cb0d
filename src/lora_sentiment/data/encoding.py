"""Encoding: texts become token ids the same way for training and prediction (HTML stripped, head+tail
truncation, overlapping windows for long texts), and rows of ids become padded numpy batches. No torch and no
`datasets` at import: the torch-free export path encodes here too."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UserError

if TYPE_CHECKING:
    from ..config import TrainConfig


_HTML_TAG = re.compile(r"<[^>]{0,100}>")


_SPACES = re.compile(r"[ \t]{2,}")


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
        """Tokenized once, cut at the token level, then wrapped in the tokenizer's own special tokens: a long
        text comes out at exactly max_length tokens, a short one exactly as the tokenizer encodes it. `head` and
        `tail` give the ids of the tokenizer's own truncation to either side; `head+tail` keeps the first
        `head_tokens` and the last tokens of a long text (Sun et al. 2019)."""
        texts = [clean_text(t) if self.strip_html else t for t in texts]
        prefix, suffix = self._special_tokens()
        budget = self.max_length - len(prefix) - len(suffix)
        head = {"head": budget, "tail": 0}.get(self.truncation, min(self.head_tokens, budget))
        tail = budget - head
        ids = [
            prefix + (tokens if len(tokens) <= budget else tokens[:head] + tokens[len(tokens) - tail :]) + suffix
            for tokens in self.bare_ids(texts)
        ]
        return self._features(ids)

    def bare_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids without special tokens or truncation, as tokenizer(texts,
        add_special_tokens=False) gives them. A fast tokenizer's own batch call without offsets tokenizes
        twice as fast (docs/benchmarks/gpu.md); the settings the wrapper resets on every call are reset here too
        (a tokenizer.json may carry a truncation and a padding of its own)."""
        backend = self._backend()
        if backend is None:
            return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]

    def _backend(self) -> Any:
        """The fast tokenizer's Rust backend without a truncation or padding of its own, or None (a slow one)."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or not hasattr(backend, "encode_batch_fast"):
            return None
        if backend.truncation is not None:
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
        return backend

    def encode(
        self, texts: Sequence[str], long_text: str = "truncate", stride: int | None = None
    ) -> tuple[dict[str, list], list[int]]:
        """Model inputs for `texts` and which text each came from: one per text, cut by the run's truncation
        (`truncate`), or every window of every text (`chunks`; see `windows` and `mean_by_text`)."""
        _check_texts(texts)
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
        backend = self._backend()
        if backend is not None:
            bare, full = (backend.encode("a", add_special_tokens=special).ids for special in (False, True))
        else:
            bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
            full = self.tokenizer("a")["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], full[start + len(bare) :]
        raise UserError("this tokenizer's special tokens cannot be told apart from a text's ids; use another --model")


# A character that is not a space as JSON Schema's (ECMAScript's) \s reads spaces, spelt out: Python's \s and
# str.isspace() also take \x1c-\x1f for spaces, so the schema and the check would disagree about such a text.
NOT_BLANK = r"[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"


def is_blank(text: str) -> bool:
    """No character but spaces: what `predict --text` and `serve` refuse (one rule, stated in the server's schema)."""
    return re.search(NOT_BLANK, text) is None


def text_list(texts: Iterable[str]) -> list[str]:
    """What a Python caller passed as texts, as the list every predictor measures and indexes twice (scores, then
    answers): a generator, a tuple, a NumPy array or a pandas Series read once. One string is refused, not read as
    texts of a character each."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list of strings, not one string: predict([text])")
    return texts if isinstance(texts, list) else list(texts)


def answerable(texts: Iterable[str]) -> list[str]:
    """text_list, refusing a blank text: `predict` and `explain` would label it with the model's guess about nothing
    (`predict --text` and `serve` refuse it too; a file's blank rows get empty fields). `predict_scores` scores any
    string, as scikit-learn's `predict_proba` would."""
    texts = text_list(texts)
    blank = [number for number, text in enumerate(texts) if isinstance(text, str) and is_blank(text)]
    if blank:
        more = f" (and {len(blank) - 1} more)" if len(blank) > 1 else ""
        raise ValueError(
            f"texts[{blank[0]}]{more} is blank: there is nothing to label; drop blank texts first (predict_file "
            "writes their rows back with empty prediction fields)"
        )
    return texts


def _check_texts(texts: Sequence[str]) -> None:
    """Every prediction's texts pass here (Python API, files, serve). A bare string would be predicted a
    character at a time (text_list refuses it), and None would fail deep in the tokenizer."""
    for number, text in enumerate(text_list(texts)):
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings: texts[{number}] is {type(text).__name__} ({str(text)[:40]})")


# transformers' PreTrainedTokenizerFast's, for a saved tokenizer whose tokenizer_config.json names none
DEFAULT_INPUT_NAMES = ("input_ids", "attention_mask")


@dataclass
class SavedTokenizer:
    """A saved fast tokenizer (tokenizer.json and tokenizer_config.json) read with the `tokenizers` library
    alone: what TextEncoder and padded_batches read of transformers' PreTrainedTokenizerFast, without importing
    transformers, which took 0.9-1.1 s of an export's `predict` on the 2-core amx host (docs/benchmarks/
    cpu-classes.md). Texts encode to the same ids (tests/unit/data/test_data.py)."""

    backend_tokenizer: Any
    pad_token_id: int | None
    padding_side: str
    model_input_names: list[str]

    @classmethod
    def open(cls, folder: Path) -> SavedTokenizer:
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        settings: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the later one wins, as in transformers
            if (folder / name).is_file():
                settings |= json.loads((folder / name).read_text(encoding="utf-8"))
        pad = settings.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        names = settings.get("model_input_names") or list(DEFAULT_INPUT_NAMES)
        return cls(backend, backend.token_to_id(pad) if pad else None, settings.get("padding_side", "right"), names)


def mean_by_text(outputs: np.ndarray, owners: Sequence[int], count: int) -> np.ndarray:
    """Per text, the mean of its windows' outputs (logits): how `--long-text chunks` reads a long text."""
    pooled = np.zeros((count, outputs.shape[1]), dtype=np.float64)
    np.add.at(pooled, np.asarray(owners, dtype=int), outputs)
    return (pooled / np.bincount(owners, minlength=count)[:, None]).astype(np.float32)


def tokenize_dataset(ds: Any, encoder: TextEncoder) -> Any:
    """Tokenize once with datasets.map (cached on disk when the dataset is file-backed)."""
    from .quiet import bars_where_watched

    with bars_where_watched():
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


def padded_batches(
    tokenizer: Any, encoded: dict[str, list], inputs: Sequence[str], batch_size: int
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Length-sorted numpy batches for a runtime without torch (an export's graph), as in the torch path, so
    little compute goes to padding: each batch's row positions in `encoded`, and the graph's inputs for it."""
    order = np.argsort(-np.array([len(ids) for ids in encoded["input_ids"]]), kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = padded_batch(encoded, index, tokenizer.pad_token_id or 0, tokenizer.padding_side == "left", None)
        feeds = {name: batch[name] for name in inputs if name in batch}
        if "token_type_ids" in inputs and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        yield index, feeds
