"""Prediction columns: a chunk of a file with each row's prediction added, in the columns its problem type
names (problems/base.py `columns`), one set per run when several runs predict (NAME.predicted_label...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..data.tables import missing_column_fix
from ..errors import UserError
from ..inference.base import Predictor, PredictorSet
from ..problems.abstention import abstained
from ..problems.base import problem_types

# With --min-confidence / --max-interval, and with --explain.
OPTIONAL_COLUMNS = ("abstained", "uncertain_labels", "explanation")


@dataclass(frozen=True)
class ChunkJob:
    """What every chunk of one file is predicted with (sent to worker processes and Ray actors as it is)."""

    text_column: str
    fmt: str  # the output format: JSONL and Parquet hold lists and objects, CSV/TSV flat columns
    batch_size: int | None = None
    explain: Any = None  # ExplainOptions: an `explanation` column (the run's torch model)


def with_predictions(
    chunk: pd.DataFrame, predictor: Predictor | PredictorSet, job: ChunkJob
) -> tuple[pd.DataFrame, int]:
    """The chunk with prediction columns added; several runs add one set each, prefixed with the run's name."""
    if not isinstance(predictor, PredictorSet):
        return _with_predictions_of(chunk, predictor, job)
    out, skipped = chunk, 0
    for name in predictor.names:
        own, skipped = _with_predictions_of(chunk[[job.text_column]], predictor[name], job)
        columns = own.drop(columns=[job.text_column]).add_prefix(f"{name}.")
        taken = [c for c in columns if c in out.columns]
        if taken:
            raise UserError(f"the input already has a column named {taken[0]!r}, which predictions go to; rename it")
        out = out.join(columns)
    return out, skipped


def _with_predictions_of(chunk: pd.DataFrame, predictor: Predictor, job: ChunkJob) -> tuple[pd.DataFrame, int]:
    """The chunk with the problem type's prediction columns (single-label predicted_label, predicted_label_name,
    probability; multi-label predicted_labels; regression predicted_value; classification also every label's
    probability); rows whose text is missing or blank get empty predictions."""
    space = predictor.space
    texts = chunk[job.text_column]
    present = texts.map(lambda t: isinstance(t, str) and bool(t.strip())).to_numpy(dtype=bool)
    scores = np.full((len(chunk), space.num_outputs), np.nan)
    if present.any():
        scores[present] = predictor.predict_scores(texts[present].tolist(), batch_size=job.batch_size)
    out = chunk.copy()
    for name, values in space.problem.columns(scores, present, space, job.fmt).items():
        out[name] = values
    if predictor.abstention.active:  # a mark beside the best guess, never a dropped row
        held, uncertain = abstained(space, np.nan_to_num(scores, nan=0.5), predictor.abstention)
        out["abstained"] = pd.array(np.where(present, held, None), dtype="boolean")
        if uncertain is not None:
            tags = [[n for n, u in zip(space.names, row) if u] if ok else None for row, ok in zip(uncertain, present)]
            out["uncertain_labels"] = tags if job.fmt in ("jsonl", "parquet") else \
                [";".join(t) if t is not None else None for t in tags]  # fmt: skip
    if job.explain is not None:
        out["explanation"] = _explanations(predictor, texts, present, scores, job)
    return out, int((~present).sum())


def _explanations(
    predictor: Predictor, texts: pd.Series, present: np.ndarray, scores: np.ndarray, job: ChunkJob
) -> list:
    """Each row's explanation: an object in JSONL and Parquet, its JSON text in CSV/TSV; none for empty rows."""
    import json

    from ..inference.explain import explain

    made = iter(explain(predictor, texts[present].tolist(), method=job.explain.explain_method,  # type: ignore[arg-type]
                        target=job.explain.explain_label, scores=scores[present]))  # fmt: skip
    records = [next(made).to_json() if ok else None for ok in present]
    if job.fmt in ("jsonl", "parquet"):
        return records
    return [json.dumps(r) if r is not None else None for r in records]


def prediction_columns() -> list[str]:
    """The columns any problem type's predictions go to: an input that has one is refused."""
    return [c for problem in problem_types() for c in problem.file_columns] + list(OPTIONAL_COLUMNS)


def check_columns(chunk: pd.DataFrame, text_column: str, where: str) -> None:
    if text_column not in chunk.columns:
        columns = ", ".join(map(str, chunk.columns))
        fix = missing_column_fix(list(chunk.columns), "--text-column")
        raise UserError(f"no column {text_column!r} in {where}; columns are: {columns} ({fix})")
    _refuse_non_texts(chunk[text_column], text_column, where)
    taken = [c for c in prediction_columns() if c in chunk.columns]
    if taken:
        raise UserError(
            f"{where} already has a column named {taken[0]!r}, which predictions are written to; rename it first"
        )


def _refuse_non_texts(values: pd.Series, column: str, where: str) -> None:
    """A column of numbers, lists or objects (JSON and Parquet keep their types) is the wrong column, or texts
    saved wrongly; left as they were, each such row would pass as a row with no text, with exit 0."""
    if values.dtype == object:
        wrong = values[values.map(lambda v: v is not None and not isinstance(v, str) and not _is_nan(v))]
    elif pd.api.types.is_string_dtype(values.dtype):
        return
    else:
        wrong = values[values.notna()]
    if len(wrong):
        value = wrong.iloc[0]
        kind = type(value.item() if isinstance(value, np.generic) else value).__name__
        more = f", and {len(wrong) - 1} more in these rows" if len(wrong) > 1 else ""
        raise UserError(
            f"the text column {column!r} of {where} holds {kind} values, not texts ({str(value)[:40]}{more}): "
            "check --text-column, or save the texts as strings"
        )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and value != value
