"""Targets: the label column becomes what the model learns from — class ids, multi-hot tag vectors (lists,
delimiter-joined strings, or several 0/1 columns) or numbers — and the run's LabelSpace is read off the training
split. The encoders are shared building blocks; which one a run uses is its problem type's choice (base.py)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from .base import problem_type, problem_types
from .label_checks import (
    PRETTY_NAMES,
    SENTIMENT_NAMES,
    folded,
    given_as_of,
    ids_against_names,
    refuse_joined_tags,
    refuse_missing_labels,
    refuse_spelling_variants,
    refuse_texts_as_labels,
    shown_label,
)
from .space import UNRECORDED, LabelSpace

LABEL_COLUMNS_NAME = "label"
# A run cannot score a label it never saw: said beside the names (a small draw's rare tags are the usual cause).
UNSEEN_FIX = "add training texts that have them, or drop them from the evaluation file"


def _datasets() -> Any:
    import datasets  # see data.py: kept off the prediction path's start-up

    return datasets


# ------------------------------------------------------------------------------------- problem type


def detect_problem_type(
    ds: Any,
    requested: str,
    *,
    separator: str | None,
    label_columns: Sequence[str] | None,
    where: str = "the training data",
) -> str:
    """auto: the first problem type (in detection order) that claims the label column — lists, --label-separator
    or --label-columns mean multi-label; numbers that are not all integers mean regression — else one class per
    text (integer ratings too: pass --problem-type regression to predict them as numbers), unless the strings are
    tag lists joined in one cell, which are refused rather than guessed at."""
    if requested != "auto":
        return requested
    column = ds.data.column("label")
    for problem in sorted(problem_types(), key=lambda p: p.detection_order):
        if problem.claims(column, separator=separator, label_columns=label_columns):
            return problem.name
    refuse_joined_tags(column, where)
    return "single-label"


def one_item_lists(column: Any) -> bool:
    """A list column with exactly one item in every row."""
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)) or len(column) == 0:
        return False
    lengths = pc.list_value_length(column)
    return lengths.null_count == 0 and pc.all(pc.equal(lengths, 1)).as_py()


def encode_targets(
    ds: Any,
    name: str,
    where: str,
    *,
    space: LabelSpace | None = None,
    given_names: Sequence[str] | None = None,
    separator: str | None = None,
) -> tuple[Any, LabelSpace]:
    """The `label` column encoded for the problem type `name`. With `space` (from the training split or a saved
    run), labels are matched to its names; without, the names are read off this split."""
    names = space.names if space is not None else None
    feature = ds.features["label"]
    # Classes (one-item lists' items too), a tag list's items (JSONL / Parquet) or tags joined in strings (names);
    # 0/1 columns say neither.
    classes = name in ("single-label", "multi-label")
    given_as = given_as_of(getattr(feature, "feature", feature)) if classes else None
    if space is not None and given_as == "ids" and space.given_as in ("names", UNRECORDED):
        ids_against_names(where, space.names, "class" if name == "single-label" else "tag", space.given_as == "names")
    ds, names = problem_type(name).encode(ds, where, names=names, given_names=given_names, separator=separator)
    if space is not None:
        return ds, LabelSpace(name, names, space.thresholds, given_as=space.given_as)
    return ds, LabelSpace(name, names, given_as=given_as)


def encode_labels(ds: Any, where: str, names: Sequence[str] | None = None, given_names: Sequence[str] | None = None):
    """Turn the `label` column into a ClassLabel; return (dataset, label names).

    With `names` (from the training split or a saved run), labels are matched to those names or ids.
    Otherwise: ClassLabel names are kept, strings are sorted into ids, integers keep their ids.
    """
    datasets = _datasets()
    feature = ds.features["label"]
    if isinstance(feature, datasets.ClassLabel):
        found_names = [PRETTY_NAMES.get(n.lower(), n) for n in feature.names]
        if names is None:
            names = list(given_names) if given_names else found_names
            return ds.cast_column("label", datasets.ClassLabel(names=list(names))), list(names)
        ds = ds.cast_column("label", datasets.Value("int64")).map(_ids_to_names(found_names), batched=True)
        return encode_labels(ds, where, names)

    column = ds.data.column("label")
    refuse_missing_labels(column, where)
    if one_item_lists(column):  # one class a text, stored as lists (as many datasets on the Hub keep them)
        ds = ds.map(lambda batch: {"label": [items[0] for items in batch["label"]]}, batched=True)
        return encode_labels(ds, where, names, given_names)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        ds, names = _encode_label_names(ds, column, where, names)
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
        names = _check_label_ids(column, where, names, given_names)
        ds = ds.cast_column("label", datasets.Value("int64"))
    else:
        lists = "several labels per text: use --problem-type multi-label, or " if pa.types.is_list(column.type) or \
            pa.types.is_large_list(column.type) else ""  # fmt: skip
        raise UserError(f"label column in {where} holds {column.type}; {lists}use integers or strings")
    if given_names is not None and len(given_names) != len(names):
        raise UserError(f"--label-names gives {len(given_names)} names but the data has {len(names)} labels")
    return ds.cast_column("label", datasets.ClassLabel(names=list(names))), list(names)


def _encode_label_names(ds: Any, column: Any, where: str, names: Sequence[str] | None) -> tuple[Any, list[str]]:
    """String labels to ids: sorted when no names are known yet, else matched to them (by case and surrounding
    spaces too)."""
    values = [str(v) for v in pc.unique(column).to_pylist()]
    if names is None:
        refuse_texts_as_labels(values, len(column), where)
        refuse_spelling_variants(values, where)
    names = list(names) if names is not None else sorted(values)
    lookup = {n: i for i, n in enumerate(names)}
    # Matched as training refuses variants (refuse_spelling_variants): by case and surrounding spaces.
    lookup.update({folded(n): i for i, n in enumerate(names) if folded(n) not in lookup})
    unknown = sorted(v for v in values if v not in lookup and folded(v) not in lookup)
    if unknown:
        raise UserError(
            f"labels in {where} not seen in training: {', '.join(shown_label(v) for v in unknown[:5])}; "
            f"known labels are: {', '.join(names)} ({UNSEEN_FIX})"
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
            f"found {as_float.min():g}..{as_float.max():g} (for a number to predict, pass --problem-type regression)"
        )
    top = int(as_float.max())
    if names is None and not given_names:
        unique = np.unique(as_float)
        distinct = len(unique)
        refuse_texts_as_labels([f"{value:g}" for value in unique], len(as_float), where, numbers=True)
        if top + 1 > 10 * distinct + 10:  # a head of top + 1 outputs, nearly all of them for no label at all
            raise UserError(
                f"labels in {where} look like codes, not class ids 0..K-1: they reach {top} but only {distinct} "
                "distinct values appear; renumber them 0, 1, 2, ..., give them as names (text), or pass "
                "--problem-type regression for a number to predict"
            )
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
    return {"label": [lookup[v] if v in lookup else lookup[folded(v)] for v in batch["label"]]}


def _ids_to_names(names: list[str]):
    return partial(_map_ids, names=names)


def _map_ids(batch: dict, names: list[str]) -> dict:
    return {"label": [names[int(i)] for i in batch["label"]]}


# ---------------------------------------------------------------------------------------- multi-label


def combine_label_columns(ds: Any, columns: Sequence[str], where: str) -> Any:
    """Several 0/1 columns (the Jigsaw layout) as one multi-hot `label` column, named by the columns."""
    for column in columns:
        values = pc.cast(ds.data.column(column), pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        if np.isnan(values).any() or not np.isin(values, (0.0, 1.0)).all():
            raise UserError(f"--label-columns: column {column!r} in {where} must hold only 0 and 1 in every row")
    return ds.map(_stack_columns, fn_kwargs={"columns": list(columns)}, batched=True, remove_columns=list(columns))


def _stack_columns(batch: dict, columns: list[str]) -> dict:
    return {LABEL_COLUMNS_NAME: [list(map(float, row)) for row in zip(*(batch[c] for c in columns))]}


def encode_tags(
    ds: Any,
    where: str,
    *,
    names: Sequence[str] | None,
    given_names: Sequence[str] | None,
    separator: str | None,
) -> tuple[Any, list[str]]:
    """Lists of tag names or ids (or `separator`-joined strings) as float multi-hot vectors."""
    datasets = _datasets()
    column = ds.data.column("label")
    if pa.types.is_list(column.type) and pa.types.is_floating(column.type.value_type):
        # Already multi-hot: --label-columns stacked, named by the columns.
        return ds.cast_column("label", datasets.Sequence(datasets.Value("float32"))), list(names or given_names or [])
    rows = _tag_lists(column, where, separator)
    found = sorted({tag for row in rows for tag in row}, key=_natural)
    if names is None:
        refuse_spelling_variants(found, where)
        names = list(given_names) if given_names else _tag_names(found)
    lookup = {name: i for i, name in enumerate(names)}
    lookup.update({str(i): i for i in range(len(names)) if str(i) not in lookup})  # ids stand for their names
    unknown = [tag for tag in found if tag not in lookup]
    if unknown:
        raise UserError(
            f"labels in {where} not seen in training: {', '.join(map(repr, unknown[:5]))}; "
            f"known labels are: {', '.join(names[:30])} ({UNSEEN_FIX}, or name every tag with --label-names: a "
            "tag no training text has is kept, and the log says so)"
        )
    hot = np.zeros((len(rows), len(names)), dtype=np.float32)
    for i, row in enumerate(rows):
        hot[i, [lookup[tag] for tag in row]] = 1.0
    ds = ds.remove_columns("label").add_column("label", hot.tolist())
    return ds.cast_column("label", datasets.Sequence(datasets.Value("float32"))), list(names)


def _tag_lists(column: Any, where: str, separator: str | None) -> list[list[str]]:
    is_list = pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
    if not is_list and not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise UserError(
            f"multi-label data in {where} needs a label column of lists (JSONL / Parquet), strings joined by "
            "--label-separator, or --label-columns with 0/1 columns"
        )
    if not is_list and separator is None:
        raise UserError(f"the label column in {where} holds strings: pass --label-separator (e.g. ',') to split them")
    rows = []
    for line, value in enumerate(column.to_pylist(), start=1):
        # No tag at all is a normal multi-label target, in every layout: an empty list, an empty cell, all 0s.
        if value is None or (isinstance(value, str) and not value.strip()):
            rows.append([])
            continue
        tags = [str(t).strip() if t is not None else "" for t in (value if is_list else value.split(separator))]
        if not all(tags):
            raise UserError(
                f"row {line} of {where} has an empty tag in {value!r}; remove it (an empty list or an empty cell "
                "means that no tag applies)"
            )
        rows.append(tags)
    return rows


def _natural(tag: str) -> tuple[int, Any]:
    return (0, int(tag)) if tag.isdigit() else (1, tag)


def _tag_names(found: list[str]) -> list[str]:
    # Integer tags are ids 0..K-1 (names "0".."K-1"); string tags are sorted names.
    if found and all(tag.isdigit() for tag in found):
        return [str(i) for i in range(int(found[-1]) + 1)]
    return found


# ----------------------------------------------------------------------------------------- regression


def encode_values(ds: Any, where: str) -> Any:
    """A numeric label column as float32; anything that is not a number is refused, naming the row."""
    datasets = _datasets()
    column = ds.data.column("label")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        for line, value in enumerate(column.to_pylist(), start=1):
            try:
                float(value)
            except (TypeError, ValueError):
                raise UserError(
                    f"row {line} of {where} has the label {value!r}, which is not a number; regression "
                    "(--problem-type regression) needs a numeric label column"
                ) from None
    elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise UserError(f"label column in {where} has type {column.type}; regression needs numbers")
    refuse_missing_labels(pc.cast(column, pa.float64()), where)
    return ds.cast_column("label", datasets.Value("float32"))


def check_trainable(ds: Any, space: LabelSpace, where: str) -> None:
    """Refuse training data the model cannot learn from: one class, no tag ever on, one value."""
    space.problem.check_trainable(np.asarray(ds["label"]), space.names, where)
