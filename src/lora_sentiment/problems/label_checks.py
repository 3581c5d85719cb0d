"""Label columns that would parse into the wrong thing, refused rather than guessed at: tags joined in one cell
read as classes, ids read against names in an order the file need not follow, texts or row ids taken for labels,
one class spelled two ways, missing labels. Shared by the encoders of problems/targets.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError

SENTIMENT_NAMES = ["Negative", "Positive"]
# Hub datasets often call the two sentiment classes neg/pos; users read Negative/Positive.
PRETTY_NAMES = {"neg": "Negative", "negative": "Negative", "pos": "Positive", "positive": "Positive"}
# How tag lists are commonly joined in one cell. '/' is left out: "Sci/Tech" is one of AG News' four classes.
JOINED_TAG_SEPARATORS = (";", ",", "|")


def refuse_joined_tags(column: Any, where: str) -> None:
    """Strings such as 'joy;love' whose every part is also a label on its own elsewhere in the column are tag
    lists joined in one cell. Read as classes, each combination would silently become a class of its own (60 of
    them in 300 GoEmotions comments), so auto refuses to guess and names both readings."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return
    values = {str(v).strip() for v in pc.unique(column).to_pylist() if v is not None}
    for separator in JOINED_TAG_SEPARATORS:
        for value in sorted(values):
            parts = [part.strip() for part in value.split(separator)]
            if len(parts) > 1 and all(parts) and all(part in values for part in parts):
                raise UserError(
                    f"the labels in {where} look like joined tags ({value!r}: each part is a label on its own in "
                    f"other rows); pass --label-separator {separator!r} for several labels per text, or "
                    "--problem-type single-label to keep each combination as one class"
                )


def given_as_of(feature: Any) -> str | None:
    """'names' or 'ids' for classes (or a tag list's items, or tags joined in strings) a file gives as strings or
    integers; None for a dataset's own ClassLabel (its ids and names agree by construction) and anything else."""
    dtype = getattr(feature, "dtype", None) if type(feature).__name__ == "Value" else None
    if dtype in ("string", "large_string"):
        return "names"
    return "ids" if isinstance(dtype, str) and dtype.startswith(("int", "uint")) else None


def ids_are_known(names: Sequence[str]) -> bool:
    """Names whose ids are not a guess: "0", "1", "2" are their own, and sentiment's negative / positive (neg / pos)
    are this tool's 0 and 1, as IMDB numbers them."""
    sentiment = [PRETTY_NAMES.get(folded(name)) for name in names] == SENTIMENT_NAMES
    return sentiment or list(names) == [str(i) for i in range(len(names))]


def ids_against_names(where: str, names: Sequence[str], kind: str, given_as_names: bool) -> None:
    """Classes (or tags) trained from names, scored against ids: the ids would be read in the names' sorted order
    (awful, good, meh), which the file's own numbering need not follow (0 awful, 1 meh, 2 good), and every score
    would be silently wrong. The user knows the mapping; we would only guess it. A run saved before runs recorded
    how their labels came may have had ids (a hub dataset's own names): read in its order, and said so."""
    if ids_are_known(names):
        return
    order = ", ".join(f"{i} = {name}" for i, name in enumerate(names[:3])) + (", ..." * (len(names) > 3))
    plural = f"{kind}{'es' if kind == 'class' else 's'}"
    if not given_as_names:
        logging.getLogger(__name__).warning(
            f"the labels in {where} are {kind} ids, read in the run's order ({order}); the run was saved before runs "
            f"recorded whether its {plural} came as names or ids, so if its training file gave names, give these "
            "labels as names too"
        )
        return
    raise UserError(
        f"the labels in {where} are {kind} ids, but the {plural} were given as names "
        f"in training ({', '.join(names[:10])}): give these labels as names too; read in the names' sorted order "
        f"({order}), the ids would be a guess"
    )


def refuse_missing_labels(column: Any, where: str) -> None:
    n_missing = column.null_count
    if pa.types.is_floating(column.type):
        n_missing += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    if n_missing:
        raise UserError(
            f"{n_missing} rows in {where} have no label (empty or NaN); fill or drop them, or check --label-column"
        )


def shown_label(label: str, width: int = 40) -> str:
    """A label as an error names it: quoted, and cut short where a column of texts was taken for labels."""
    return repr(label if len(label) <= width else label[: width - 1] + "…")


def refuse_texts_as_labels(values: Sequence[str], rows: int, where: str, numbers: bool = False) -> None:
    """A label column with a different value in most rows holds texts or ids, not classes (--text-column and
    --label-column swapped, or a row id taken for the label): refused before it became a head of a class a row. A
    set of many small classes (150 intents, 10 texts each) stays far below half its rows."""
    if len(values) > max(20, rows // 2):
        raise UserError(
            f"the label column of {where} has {len(values)} different values in {rows} rows (e.g. "
            f"{shown_label(values[0])}), as texts or ids do, not classes: check --label-column and --text-column"
            + (", or pass --problem-type regression for a number to predict" if numbers else "")
        )


def refuse_spelling_variants(labels: Sequence[str], where: str) -> None:
    """Training labels that differ only in case or surrounding spaces (' positive', 'Positive', 'positive') would
    each become a class of its own, splitting one class's texts between outputs, while evaluation files are matched
    to the names regardless of case and those spaces. Which spelling is meant is the user's to say, not ours."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(folded(label), []).append(label)
    variants = [sorted(group) for group in groups.values() if len(group) > 1]
    if variants:
        shown = "; ".join(", ".join(map(shown_label, group)) for group in variants[:3])
        raise UserError(
            f"labels in {where} differ only in case or spaces: {shown}; write each class one way (they would "
            "be trained as different classes)"
        )


def folded(label: str) -> str:
    return label.strip().casefold()
