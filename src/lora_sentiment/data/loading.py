"""Loading: hub datasets, local files (CSV / TSV / JSONL / Parquet) or an aclImdb folder, as `datasets` splits.

`datasets` is imported inside the functions that build datasets: `import datasets` would add about 0.6 s to
every `predict` command's start-up, which needs none of this."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from ..errors import UserError, first_line
from ..hub import load_with_fallback
from ..problems.targets import SENTIMENT_NAMES
from .quiet import quiet_datasets
from .tables import check_field_counts, read_error_fix

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
ACLIMDB_LABELS = {"neg": 0, "pos": 1}
BAR_BYTES = 64 << 20  # datasets reads such a CSV in about a second on the 2-core machine: a bar from there


# ---------------------------------------------------------------------------------------------- loading


def load_splits(source: str, *, data_config: str | None = None) -> Any:
    """A DatasetDict from a hub name, a local file (one split: train), a folder of split files (train.csv,
    validation.parquet, data/test-00000-of-00001.parquet...) or an aclImdb folder."""
    import datasets

    path = Path(source).expanduser()
    if path.is_dir():
        files = _split_files(path)
        if files:
            return datasets.DatasetDict({split: _load_shards(shards) for split, shards in files.items()})
        return _load_aclimdb(path)
    check_source(source, "--data / --eval-data")
    if path.exists():
        return datasets.DatasetDict({"train": _load_file(path)})

    def load_from_hub(**_: Any) -> Any:
        return datasets.load_dataset(source, data_config)

    try:
        return load_with_fallback("dataset", source, "--data", load_from_hub, cache_kwarg=None)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"could not load dataset {source!r}: {first_line(exc)}") from exc


def check_source(source: str, flag: str) -> None:
    """A local data path that does not exist, or is a file of a type no reader takes, refused before anything
    is read (a hub name is checked when it loads)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return
    if path.suffix.lower() in FILE_BUILDERS and not path.exists():
        raise UserError(f"data file not found: {source} (check the {flag} path)")
    if path.exists():
        if path.suffix.lower() not in FILE_BUILDERS:
            raise UserError(
                f"unsupported data file type {path.suffix or '(none)'!r} for {path} ({flag}); use one of "
                f"{', '.join(FILE_BUILDERS)}"
            )
        return
    if source.startswith((".", "/", "~")) or path.suffix:
        raise UserError(
            f"data path not found: {source}; {flag} takes a {'/'.join(sorted(set(FILE_BUILDERS)))} file, "
            "an aclImdb folder or a hub dataset name"
        )


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
    if builder == "json":
        return _nonempty(_load_json(path), path)
    try:
        # A bar only where reading takes long enough to want one (datasets' own "Generating train split" bar
        # stood before every first read, one-line errors included).
        bars = nullcontext() if path.stat().st_size >= BAR_BYTES else quiet_datasets()
        with _quiet_datasets_logger(), bars:  # its CSV reader logs a traceback of its own before raising
            loaded = datasets.load_dataset(builder, data_files={"train": str(path)}, split="train", **kwargs)
    except Exception as exc:  # the builders raise many types (ParserError, ArrowInvalid, UnicodeDecodeError...)
        cause = exc.__cause__ or exc.__context__ or exc
        raise UserError(
            f"could not read {path} as {suffix[1:]}: {first_line(cause)} ({read_error_fix(cause)})"
        ) from exc
    return _nonempty(loaded, path)


def _nonempty(loaded: Any, path: Path) -> Any:
    if len(loaded) == 0:
        raise UserError(f"data file {path} has no rows")
    return loaded


def _load_json(path: Path) -> Any:
    """JSON Lines (or one JSON array of objects), parsed line by line with Python's json into one Arrow table.
    Not `datasets`' JSON builder: the pyarrow reader under it crashed the process with a segmentation fault on
    a generated file in the long fuzz search (docs/reliability.md), and a crash cannot be answered with a
    one-line error. Columns are the union of every object's keys, missing values null, as that builder made."""
    import datasets
    import pyarrow as pa

    records = _json_records(path)
    names = list(dict.fromkeys(key for record in records for key in record))
    columns = {}
    for name in names:
        try:
            columns[name] = pa.array([record.get(name) for record in records])
        except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
            raise UserError(
                f"column {name!r} of {path} mixes kinds of values ({first_line(exc)}); give every row the same "
                "kind (all texts, all numbers, all lists)"
            ) from None
    return datasets.Dataset(datasets.table.InMemoryTable(pa.table(columns) if columns else pa.table({})))


def _json_records(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"could not read {path}: it is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    if text.lstrip().startswith("["):  # one JSON array of objects
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix that line") from None
        return [_object(item, path, f"item {number}") for number, item in enumerate(items, 1)]
    records = []
    # "\n" only: str.splitlines() would also split at U+2028 and other characters a JSON string may hold raw.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"line {number} of {path} is not valid JSON ({exc.msg}); JSONL needs one object per line"
            ) from None
        records.append(_object(item, path, f"line {number}"))
    return records


def _object(item: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise UserError(
            f'{where} of {path} is a JSON {type(item).__name__}, not an object: give one {{"text": ..., '
            '"label": ...} object per line'
        )
    return item


@contextmanager
def _quiet_datasets_logger() -> Iterator[None]:
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


# The file names `datasets` reads as splits in a local folder or a cloned hub repository.
SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_SHARD = re.compile(r"^(?P<split>[a-z]+)(-\d{5}-of-\d{5})?$")


def _split_files(root: Path) -> dict[str, list[Path]]:
    """A folder's data files named by their split, in it or in its data/ (a hub repository's layout): `train.csv`
    and `validation.csv`, or shards `train-00000-of-00002.parquet`. A name that only begins with a split's
    (`train_small.csv` beside `train_full.csv`) is not taken: read together, two such files would silently
    become one training set."""
    found: dict[str, list[Path]] = {}
    for folder in (root, root / "data"):
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        for file in files:
            match = _SHARD.match(file.stem.lower())
            if not file.is_file() or file.suffix.lower() not in FILE_BUILDERS or match is None:
                continue
            split = next((name for name, aliases in SPLIT_NAMES.items() if match["split"] in aliases), None)
            if split is not None:
                found.setdefault(split, []).append(file)
    for split, files in found.items():
        if (
            len({f.parent for f in files}) > 1
            or len({f.suffix.lower() for f in files}) > 1
            or (len(files) > 1 and not all("-of-" in f.name for f in files))
        ):
            names = ", ".join(str(f.relative_to(root)) for f in files)
            raise UserError(f"{root} has more than one {split} file ({names}); pass one file with --data")
    return found  # without a train file: an evaluation folder; `train` names the splits it has


def _load_shards(files: list[Path]) -> Any:
    import datasets

    parts = [_load_file(file) for file in files]
    try:
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    except ValueError as exc:  # shards whose columns differ
        raise UserError(f"the shards {files[0].name}... of {files[0].parent} differ: {first_line(exc)}") from None


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
            f"folder {root} holds no train file (train.csv, train.parquet, ...; validation and test files beside it "
            "are its other splits) and is not in the aclImdb layout (train/pos/*.txt and train/neg/*.txt); give such "
            "a folder or a data file"
        )
    return datasets.DatasetDict(splits)


# ------------------------------------------------------------------------------------------- cleaning


# --------------------------------------------------------------------------------------- tokenization
