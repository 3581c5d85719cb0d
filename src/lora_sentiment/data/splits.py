"""Labelled splits: the text and label columns picked and checked, empty texts dropped, targets encoded for the
problem type, stratified samples drawn, and an evaluation split found or carved out of train."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import TrainConfig
from ..errors import UserError
from ..problems.base import problem_type
from ..problems.space import LabelSpace
from ..problems.targets import (
    check_trainable,
    combine_label_columns,
    detect_problem_type,
    encode_targets,
    one_item_lists,
    shown_label,
)
from .loading import load_splits
from .quiet import quiet_datasets
from .sizing import sized_settings
from .tables import missing_column_fix


@dataclass
class LabeledData:
    train: Any  # datasets.Dataset with columns text (str) and label (class id, multi-hot floats or a number)
    eval: Any
    space: LabelSpace
    dropped_empty: dict[str, int]
    sized: dict[str, float] = field(default_factory=dict)  # `auto` settings decided on the data's size
    carved: bool = False  # the evaluation split was carved out of train (--eval-fraction), none being given

    @property
    def label_names(self) -> list[str]:
        return self.space.names


def select_text_label(
    ds: Any, text_column: str, label_column: str | None, where: str, label_columns: Sequence[str] | None = None
) -> Any:
    """Keep only the text and label columns, renamed to `text` / `label` (several --label-columns become one
    multi-hot `label`); name the existing columns if one is absent."""
    labels = list(label_columns or ([label_column] if label_column else []))
    if text_column in labels:  # one column read as both failed in a traceback ("exists 2 times in schema")
        flag = "--label-columns" if label_columns else "--label-column"
        raise UserError(f"--text-column and {flag} both name {text_column!r}; the texts and their labels are two "
                        f"columns (columns are: {', '.join(ds.column_names)})")  # fmt: skip
    wanted = [(text_column, "--text-column")]
    if label_columns:
        wanted += [(column, "--label-columns") for column in label_columns]
    elif label_column:
        wanted.append((label_column, "--label-column"))
    # Every missing column in one line: a file whose columns are both named otherwise needs two flags, not two runs.
    missing = [(column, flag) for column, flag in wanted if column not in ds.column_names]
    if missing:
        names = " and ".join(repr(column) for column, _ in missing)
        flags = " and ".join(dict.fromkeys(flag for _, flag in missing))
        raise UserError(
            f"column{'s' if len(missing) > 1 else ''} {names} not found in {where}; columns are: "
            f"{', '.join(ds.column_names)} ({missing_column_fix(ds.column_names, flags)})"
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
    return _list_labels_read(ds, where) if label_column and not label_columns else ds


_LIST_TEXT = re.compile(r"\s*\[.*\]\s*", re.S)


def _list_labels_read(ds: Any, where: str) -> Any:
    """Labels that are lists written as text ("['joy', 'love']": pandas' to_csv of a list column) read as the
    lists they are. Read as strings, every combination of tags became a class of its own. Only a column whose
    every label is such a list is read so; an empty cell is no tags, as null is in a list column."""
    import datasets

    column = ds.data.column("label")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return ds
    values = [v for v in pc.unique(column).to_pylist() if v is not None and v.strip()]
    if not values or not all(_LIST_TEXT.fullmatch(v) for v in values):
        return ds
    parsed = {value: items for value in values if (items := _list_of_labels(value)) is not None}
    if not parsed:  # brackets that are part of the class names ("[SPAM]")
        return ds
    if len(parsed) < len(values):
        value = next(v for v in values if v not in parsed)
        raise UserError(
            f"the labels in {where} are lists written as text, but {shown_label(value)} is not a list of names or "
            "ids; fix it, or save the file as JSONL or Parquet, which keep lists"
        )
    kinds = {type(item) for items in parsed.values() for item in items}
    if len(kinds) > 1:
        raise UserError(
            f"the label lists in {where} mix names and ids; give every tag as a name, or every tag as an id"
        )
    feature = datasets.Value("int64" if kinds == {int} else "string")
    lists = [parsed.get(v) for v in column.to_pylist()]  # an empty cell (None, blank): no tags
    with quiet_datasets():
        ds = ds.remove_columns("label").add_column("label", lists)
        return ds.cast_column("label", datasets.Sequence(feature))


def _list_of_labels(value: str) -> list | None:
    try:
        items = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    return items if isinstance(items, list) and all(type(i) in (str, int) for i in items) else None


def drop_empty_texts(ds: Any, where: str) -> tuple[Any, int]:
    """Drop rows whose text is missing or whitespace-only; return how many went."""
    import datasets

    column = ds.data.column("text")
    if pa.types.is_nested(column.type):  # lists or objects: no cast makes them a text
        raise UserError(f"the text column of {where} holds {column.type}, not texts; check --text-column")
    kind = column.type
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_temporal(kind)
    ):
        # An id or a rating taken for the text (cast to strings, it trained on "17", "18", ...): as predict refuses it.
        raise UserError(f"the text column of {where} holds {kind} values, not texts; check --text-column")
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        with quiet_datasets():
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


def encode_quietly(ds: Any, name: str, where: str, **kwargs: Any) -> tuple[Any, LabelSpace]:
    """encode_targets without datasets' "Map" / "Casting the dataset" bars (quiet.py)."""
    with quiet_datasets():
        return encode_targets(ds, name, where, **kwargs)


def load_labeled_data(config: TrainConfig, log: Callable[[str], None] = print) -> LabeledData:
    """Train and eval splits with `text` and an encoded `label`, cleaned, subsampled, checked."""
    splits, where = _read(config)
    train, space, dropped_train = _encoded_train(splits, config, where, log)
    eval_ds, dropped_eval = _encoded_eval(splits, config, space, where)
    classes = len(np.unique(np.asarray(train["label"]))) if space.problem_type == "single-label" else None
    sized = sized_settings(config, len(train), classes)
    config = config.model_copy(update=sized)
    carved = eval_ds is None
    if not carved and config.eval_data is None and config.eval_split is None:  # say which split the data gave
        log(f"Evaluation split: the {_auto_eval_split(splits, config)} split of {where} (--eval-split picks another).")
    if carved:
        train, eval_ds = _carve_eval(train, space, config, where)
        how = "a stratified" if space.problem.stratified else "a random"
        log(f"No evaluation split: carved {how} {config.eval_fraction:.0%} of train ({len(eval_ds)} rows).")
    _log_dropped(dropped_train, dropped_eval, log)
    train = stratified_sample(train, config.max_train_samples, config.seed)
    eval_ds = stratified_sample(eval_ds, config.max_eval_samples, config.seed)
    check_trainable(train, space, where)
    return LabeledData(train, eval_ds, space, {"train": dropped_train, "eval": dropped_eval}, sized, carved)


def load_eval_split(config: TrainConfig, space: LabelSpace, log: Callable[[str], None] = print) -> Any:
    """The evaluation split as load_labeled_data gives it to a run whose label space is `space`. From --eval-data
    only that file is read: a large training file is not read again to check a few hundred texts."""
    if config.eval_data is None:
        return load_labeled_data(config, log=log).eval
    eval_ds, where = _eval_source({}, config, config.data)
    eval_ds, _ = _labeled_split(eval_ds, config, where)
    eval_ds, _ = encode_quietly(eval_ds, space.problem_type, where, space=space, separator=config.label_separator)
    return stratified_sample(eval_ds, config.max_eval_samples, config.seed)


def load_audited_data(config: TrainConfig, log: Callable[[str], None] = print) -> LabeledData:
    """What `audit` reads: the training split whole (nothing carved out of it), each row with `row`, its position
    in the training file; the evaluation split where the data has one (None otherwise), for leaks."""
    splits, where = _read(config)
    train, space, dropped_train = _encoded_train(splits, config, where, log, row_ids=True)
    eval_ds, dropped_eval = _encoded_eval(splits, config, space, where, row_ids=True)
    _log_dropped(dropped_train, dropped_eval, log)
    train = stratified_sample(train, config.max_train_samples, config.seed)
    check_trainable(train, space, where)
    return LabeledData(train, eval_ds, space, {"train": dropped_train, "eval": dropped_eval})


def _read(config: TrainConfig) -> tuple[Any, str]:
    splits = load_splits(config.data, data_config=config.data_config)
    if config.train_split not in splits:
        raise UserError(
            f"split {config.train_split!r} not in {config.data}; splits are: {', '.join(splits)} (set --train-split)"
        )
    return splits, config.data


def _encoded_train(
    splits: Any, config: TrainConfig, where: str, log: Callable[[str], None], row_ids: bool = False
) -> tuple[Any, LabelSpace, int]:
    train, dropped = _labeled_split(splits[config.train_split], config, where, row_ids)
    kind = detect_problem_type(
        train, config.problem_type, separator=config.label_separator, label_columns=config.label_columns, where=where
    )
    if config.problem_type == "auto" and problem_type(kind).claimed_because:
        log(f"Problem type: {kind}, as {problem_type(kind).claimed_because} (--problem-type auto).")
        if kind == "multi-label" and one_item_lists(train.data.column("label")):
            log("Every text has exactly one tag: if they exclude each other, --problem-type single-label trains one "
                "choice among them instead of a yes or no for each.")  # fmt: skip
    names = config.label_columns or config.label_names
    if problem_type(kind).named_after_column:
        names = names or [config.label_column]
    train, space = encode_quietly(train, kind, where, given_names=names, separator=config.label_separator)
    return train, space, dropped


def _encoded_eval(
    splits: Any, config: TrainConfig, space: LabelSpace, where: str, row_ids: bool = False
) -> tuple[Any, int]:
    eval_ds, eval_where = _eval_source(splits, config, where)
    if eval_ds is None:
        return None, 0
    eval_ds, dropped = _labeled_split(eval_ds, config, eval_where, row_ids)
    eval_ds, _ = encode_quietly(eval_ds, space.problem_type, eval_where, space=space, separator=config.label_separator)
    return eval_ds, dropped


def _log_dropped(dropped_train: int, dropped_eval: int, log: Callable[[str], None]) -> None:
    for dropped, name in ((dropped_train, "training"), (dropped_eval, "evaluation")):
        if dropped:
            log(f"Dropped {dropped} {name} rows with an empty or whitespace-only text.")


def _labeled_split(ds: Any, config: TrainConfig, where: str, row_ids: bool = False) -> tuple[Any, int]:
    ds = select_text_label(ds, config.text_column, config.label_column, where, config.label_columns)
    if row_ids:
        ds = ds.add_column("row", np.arange(len(ds), dtype=np.int64))
    return drop_empty_texts(ds, where)


def _eval_source(splits: Any, config: TrainConfig, where: str) -> tuple[Any, str]:
    """The evaluation split: --eval-data, --eval-split, the data's own validation/test split, or None."""
    if config.eval_data is not None:
        eval_splits = load_splits(config.eval_data)
        # A source of several splits is scored on its held-out one, as `evaluate` picks it; never its train split.
        name = next((s for s in ("test", "validation") if s in eval_splits), next(iter(eval_splits)))
        return eval_splits[name], config.eval_data if len(eval_splits) == 1 else f"{config.eval_data} [{name}]"
    if config.eval_split is not None:
        if config.eval_split not in splits:
            raise UserError(
                f"split {config.eval_split!r} not in {where}; splits are: {', '.join(splits)} (set --eval-split)"
            )
        return splits[config.eval_split], f"{where} [{config.eval_split}]"
    auto = _auto_eval_split(splits, config)
    return (splits[auto], f"{where} [{auto}]") if auto else (None, where)


def _auto_eval_split(splits: Any, config: TrainConfig) -> str | None:
    return next((s for s in ("validation", "test") if s in splits and s != config.train_split), None)


def _carve_eval(train: Any, space: LabelSpace, config: TrainConfig, where: str) -> tuple[Any, Any]:
    """A seeded share of train held out; stratified by class for single-label data."""
    stratify = None
    if space.problem.stratified:
        counts = np.bincount(np.asarray(train["label"]), minlength=len(space.names))
        single = [name for name, count in zip(space.names, counts) if count == 1]
        if single:
            listed = ", ".join(map(shown_label, single[:5])) + (
                f" and {len(single) - 5} more" if len(single) > 5 else ""
            )
            raise UserError(
                f"cannot carve an evaluation split from {where}: {listed} {'has' if len(single) == 1 else 'have'} a "
                "single example; pass --eval-data, or add texts to or drop that class"
            )
        stratify = "label"
    try:
        parts = train.train_test_split(test_size=config.eval_fraction, stratify_by_column=stratify, seed=config.seed)
    except ValueError:  # too few rows for a split of that share (or for one row of each class in it)
        raise UserError(
            f"cannot carve an evaluation split from the {len(train)} training rows of {where} with --eval-fraction "
            f"{config.eval_fraction:g}; give more rows, another --eval-fraction, or --eval-data"
        ) from None
    return parts["train"], parts["test"]
