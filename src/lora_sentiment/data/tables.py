"""Tables in files: the formats `predict --input/--output` and the benchmarks read and write — CSV, TSV, JSONL,
Parquet, plain text — read in chunks so files larger than memory work, with parser errors as one-line messages
naming the file and the fix. pandas and pyarrow are imported here, so modules that only name formats do not."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..atomic import check_writable, claimed
from ..errors import UserError, first_line

INPUT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "txt",
}


OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


STDIO = "-"


# Characters that str.splitlines() and some JSONL readers take as line ends; json.dumps leaves them raw.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def resolve_format(path: str, given: str | None, formats: dict[str, str], flag: str, stdio_default: str) -> str:
    if given:
        return given
    if path == STDIO:
        return stdio_default
    suffix = Path(path).suffix.lower()
    if suffix not in formats:
        known = ", ".join(sorted(set(formats)))
        raise UserError(f"cannot tell the format of {path} from its extension; use one of {known} or pass {flag}")
    return formats[suffix]


def check_input(path: str) -> None:
    if path != STDIO and Path(path).is_dir():
        raise UserError(f"--input {path} is a folder; give one file (--runner ray reads a folder of files)")
    if path != STDIO and not Path(path).is_file():
        raise UserError(f"input file not found: {path} (check --input)")


def read_chunks(path: str, fmt: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The input as DataFrames of at most `chunk_size` rows. CSV/TSV values stay strings so rows are written
    back exactly as they were read."""
    source: Any = sys.stdin if path == STDIO else path
    check_input(path)
    if fmt in ("csv", "tsv"):
        yield from _csv_chunks(path, source, "," if fmt == "csv" else "\t", chunk_size)
    elif fmt in ("json", "jsonl"):
        yield from _json_chunks(path, fmt, chunk_size)
    elif fmt == "parquet":
        # Parquet needs random access: stdin is read whole first.
        parquet = pq.ParquetFile(io.BytesIO(sys.stdin.buffer.read()) if path == STDIO else path)
        for batch in parquet.iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()
    elif fmt == "txt":
        handle = sys.stdin if path == STDIO else open(path, encoding="utf-8", errors="replace", newline="")
        try:
            lines: list[str] = []
            for line in handle:
                lines.append(line.rstrip("\r\n"))
                if len(lines) == chunk_size:
                    yield pd.DataFrame({"text": lines})
                    lines = []
            if lines:
                yield pd.DataFrame({"text": lines})
        finally:
            if handle is not sys.stdin:
                handle.close()
    else:
        raise UserError(f"unknown input format {fmt!r}; use one of csv, tsv, json, jsonl, parquet, txt")


def _json_chunks(path: str, fmt: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """JSON Lines in chunks; a .json file is a JSON array of row objects (read whole: an array cannot be
    streamed) or JSON Lines, as `train --data` reads it. An array read as JSON Lines would be one row whose
    columns are the array's positions: refused, not misread. Stdin is streamed as JSON Lines, and read whole
    only when named json."""
    source: Any = path
    if path == STDIO:
        source = io.StringIO(sys.stdin.read()) if fmt == "json" else sys.stdin
        start = source.getvalue().lstrip()[:1] if fmt == "json" else "{"
    else:
        start = _json_start(path)
    if start == "[" and fmt == "jsonl":
        raise _json_array_as_lines(path)
    if start not in ("", "[", "{"):
        raise UserError(f'{path} is not JSON rows: it should hold objects ({{"text": ...}}), one a line or in an array')
    if start == "[":
        frame = pd.read_json(source, orient="records", dtype=False)
        if not frame.empty and all(isinstance(c, int) for c in frame.columns):
            raise UserError(
                f'{path} is a JSON array of lists, not of row objects ({{"text": ...}}); save rows as objects'
            )
        for first in range(0, len(frame), chunk_size):
            yield frame.iloc[first : first + chunk_size].reset_index(drop=True)
        return
    with pd.read_json(source, lines=True, dtype=False, chunksize=chunk_size) as reader:
        for number, chunk in enumerate(reader):
            if number == 0 and len(chunk.columns) and all(isinstance(c, int) for c in chunk.columns):
                raise _json_array_as_lines(path)
            yield chunk


def _json_start(path: str) -> str:
    # Bytes that are not UTF-8 are left for the parser, whose error names the file and the fix.
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(4096).lstrip("\ufeff \t\r\n")[:1]


def _json_array_as_lines(path: str) -> UserError:
    return UserError(
        f"{path} is one JSON array, not JSON Lines (an object a line): name it .json or pass --input-format json"
    )


def _csv_chunks(path: str, source: Any, separator: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """CSV/TSV chunks whose values stay strings. A row with more fields than the header is refused: a file is
    checked up front, naming the line; stdin cannot be read twice, so there pandas' own data-loss warning
    (with index_col=False, which keeps it from turning the extra field into an index) becomes the error."""
    if path != STDIO:
        check_field_counts(Path(path), separator)
    reader = pd.read_csv(source, sep=separator, dtype=str, keep_default_na=False, chunksize=chunk_size, index_col=False)
    with reader, warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            for number, chunk in enumerate(reader):
                if path == STDIO:  # a file's header and rows were checked with its field counts
                    if number == 0:
                        _refuse_other_separator([str(c) for c in chunk.columns], path)
                    _refuse_repeated_header(chunk, number * chunk_size, path)
                yield chunk
        except pd.errors.ParserWarning:
            raise UserError(
                f"a row of {path} has more fields than the header: quote the field that contains the separator "
                '("..."), or use TSV or JSONL'
            ) from None


def total_rows(path: str, fmt: str) -> int | None:
    """The rows a file will give, known before it is predicted (for the progress bar, and so that a job large
    enough to repay a compile pays it at its start): Parquet from its metadata, CSV / TSV from the pass that
    checks their field counts (made anyway, and made once), JSON Lines and plain text by counting lines. A
    passing count of what the reader will yield, not a parse: None for stdin, which is read once, and for a JSON
    array, which is parsed whole when read."""
    if path == STDIO:
        return None
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if fmt in ("csv", "tsv"):
        return check_field_counts(Path(path), "," if fmt == "csv" else "\t")
    if fmt == "json" and _json_start(path) == "[":
        return None  # an array is parsed whole when it is read: counted then, as stdin is
    if fmt in ("json", "jsonl", "txt"):
        with open(path, "rb") as handle:  # JSON Lines readers skip blank lines; every line of a text file is a row
            return sum(1 for line in handle if fmt == "txt" or line.strip())
    return None


def write_chunk(frame: pd.DataFrame, handle: Any, fmt: str, first: bool) -> None:
    """`handle`: a text file, or for Parquet the parts of batch/parquet_output.py."""
    if fmt == "parquet":
        handle.write(frame)
    elif fmt in ("csv", "tsv"):
        frame.to_csv(
            handle,
            sep="," if fmt == "csv" else "\t",
            header=first,
            index=False,
            float_format="%.6g",
            lineterminator="\n",
        )
    else:
        frame = frame.astype(object).where(frame.notna(), None)  # JSON has null, not NaN
        for record in frame.to_dict(orient="records"):
            line = json.dumps(record, ensure_ascii=False, default=_json_default, allow_nan=False)
            handle.write(line.translate(_LINE_BREAKS) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is pd.NA:
        return None
    return str(value)


def claimed_output(output_path: str) -> AbstractContextManager[None]:
    """--output kept to this command while it is checked, predicted and written (atomic.claimed): two predictions
    into one file would share its hidden staging file. stdout is nobody's to claim."""
    return nullcontext() if output_path == STDIO else claimed(Path(output_path), "--output")


def checked_output(output_path: str, overwrite: bool, folder: bool = False) -> Path | None:
    """--output, checked: stdout (None), or a file (`folder`: a folder, as Ray writes) that may be written."""
    if output_path == STDIO:
        return None
    target = Path(output_path)
    if target.is_dir() and not folder:  # --overwrite would swap a file for it only after the whole prediction
        raise UserError(f"--output {target} is a folder; give a file path (e.g. {target / 'predictions.csv'})")
    if target.exists() and not overwrite:
        raise UserError(f"--output {target} exists; pass --overwrite to replace it or choose another --output")
    if not target.parent.is_dir():
        raise UserError(f"the folder of --output {target} does not exist; create it first")
    check_writable(target, "--output")
    return target


def checked_chunks(
    path: str, fmt: str, chunk_size: int, format_fix: str = "or pass --input-format"
) -> Iterator[pd.DataFrame]:
    """Parser errors become one-line messages naming the file and the likely fix."""
    chunks = read_chunks(path, fmt, chunk_size)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except UserError:
            raise
        except pd.errors.EmptyDataError:
            return
        except (
            Exception
        ) as exc:  # pandas and pyarrow raise many types (ParserError, ArrowInvalid, UnicodeDecodeError...)
            raise UserError(
                f"could not read {path} as {fmt}: {first_line(exc)} ({read_error_fix(exc)}, {format_fix})"
            ) from None
        yield chunk


def check_field_counts(path: Path, separator: str) -> int:
    """Refuse a row with more fields than the header. pandas would silently take the extra leading field as
    the row's index ("A wonderful, moving film." read as " moving film."): a misread, not an error; and a row that
    repeats the header. Returns the data rows pandas will read (it skips blank lines); a file checked before is not
    read again while unchanged."""
    stat = path.stat()
    return _field_counts(str(path), separator, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _field_counts(path: str, separator: str, size: int, mtime_ns: int) -> int:
    csv.field_size_limit(2**31 - 1)  # one review can be megabytes long; the default limit is 128 KiB
    rows = 0
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=separator)
        header = next(reader, None)
        if not header:
            return 0
        _refuse_other_separator(header, path)
        for row in reader:
            if len(row) > len(header):
                what = "TSV" if separator == "\t" else "CSV"
                raise UserError(
                    f"line {reader.line_num} of {path} has {len(row)} fields but the header has {len(header)}: "
                    f'quote the field that contains the separator ("..."), or use TSV or JSONL instead of {what}'
                )
            # Files joined with their headers: read on, the header's label would be a class of its own (one text
            # called "text" given the class "label"), found only if it broke a later step.
            if row == header and len(header) > 1:
                raise _repeated_header(f"line {reader.line_num} of {path}", header)
            rows += bool(row) and (len(row) > 1 or bool(row[0].strip()))
    return rows


def _refuse_repeated_header(chunk: pd.DataFrame, first_row: int, path: str) -> None:
    if chunk.shape[1] < 2:
        return
    repeats = chunk.eq(pd.Series([str(c) for c in chunk.columns], index=chunk.columns)).all(axis=1).to_numpy()
    if repeats.any():
        row = first_row + int(repeats.argmax()) + 1
        raise _repeated_header(f"row {row} of {path}", chunk.columns)


def _repeated_header(where: str, header: Sequence[Any]) -> UserError:
    """One message for both checks (a file's lines, stdin's chunks)."""
    return UserError(
        f"{where} repeats the header ({', '.join(map(str, header))}): files joined with their headers? Delete the "
        "repeated header lines"
    )


OTHER_SEPARATORS = ("\t", ";", "|")  # what a file read as CSV may turn out separated by


def _refuse_other_separator(header: list[str], path: str) -> None:
    """Before the rows: a header of one field of short names joined by another separator (Excel saves "CSV" with
    semicolons where the comma is the decimal mark). Read as one column, a text holding a comma was refused as a row
    with too many fields ("quote the field"), which named neither the cause nor the fix."""
    fix = other_separator_fix(header)
    if fix and all(0 < len(name.strip()) <= 64 for name in re.split(f"[{''.join(OTHER_SEPARATORS)}]", header[0])):
        raise UserError(f"{path}: {fix}")


def column_to_read(
    given: str | None, trained: Sequence[str | None], default: str, columns: Sequence[Any], flag: str, where: str
) -> str:
    """The column of a new file that runs read: `given` (the flag), else the one the runs were trained on where the
    file has it, so a file shaped like the training file needs no flag, else `default`. Runs trained on different
    columns that the file has each of are refused: which one to read is the user's to say."""
    if given is not None:
        return given
    own = list(dict.fromkeys(c for c in trained if c and c != default and c in columns))
    if len(own) > 1:
        named = " and ".join(map(repr, own))
        raise UserError(f"the runs were trained on the columns {named} ({flag}), and {where} has both; set {flag}")
    if own:
        return own[0]
    others = list(dict.fromkeys(c for c in trained if c and c != default))
    if others and default not in columns:
        named = " or ".join(map(repr, others))
        raise UserError(
            f"no column {named} (the run's {flag}) or {default!r} in {where}; columns are: "
            f"{', '.join(map(str, columns))} ({missing_column_fix(columns, flag)})"
        )
    return default


def missing_column_fix(columns: Sequence[Any], flag: str) -> str:
    """The fix for a column not found: the flag that names it, unless the file's header is one column whose
    name holds another separator ("text;label"): a file separated by ';', '|' or tabs read as CSV."""
    return other_separator_fix(columns) or f"set {flag}"


def other_separator_fix(columns: Sequence[Any]) -> str | None:
    if len(columns) == 1:
        name = str(columns[0])
        found = next((sep for sep in OTHER_SEPARATORS if sep in name), None)
        if found is not None:
            shown = "tabs" if found == "\t" else repr(found)
            return (
                f"its header is one column, {name!r}: the fields look separated by {shown}; save the file "
                "comma-separated as .csv, or tab-separated as .tsv"
            )
    return None


def read_error_fix(error: BaseException) -> str:
    """The likely fix for a file that would not parse, by what went wrong."""
    if isinstance(error, UnicodeDecodeError):
        return "the file is not UTF-8 text: re-save it as UTF-8"
    text = str(error)
    if "Expected" in text and "fields" in text:
        return "fix or remove that row; quote fields that contain the separator"
    return "check that the file is complete and in the format its extension says"
