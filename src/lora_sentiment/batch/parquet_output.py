"""Parquet output of `predict --input`: each chunk written as it is done, as a part in a hidden folder beside the
output, then the parts joined into one file under a schema unified across them. One writer opened on the first
chunk's schema would refuse a later chunk whose columns differ, half way through a long job: JSON Lines types are
inferred chunk by chunk, a column can be all null in one chunk, and a chunk of rows without text has no
predictions. Memory stays bounded by a chunk: the parts are joined one at a time."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import staged_path, staging_path
from ..errors import UserError, first_line


class ParquetParts:
    def __init__(self, folder: Path):
        self.folder = folder
        self.parts: list[Path] = []

    def write(self, frame: pd.DataFrame) -> None:
        path = self.folder / f"part-{len(self.parts):06d}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        self.parts.append(path)

    def flush(self) -> None:  # a text handle's, which the writing loop calls
        pass

    def join(self, target: Path, where: str) -> None:
        if not self.parts:
            pq.write_table(pa.table({}), target)
            return
        try:
            schema = pa.unify_schemas([pq.read_schema(p) for p in self.parts], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
            raise UserError(
                f"a column of {where} changes type between rows ({first_line(exc)}), which one Parquet file cannot "
                "hold; write CSV or JSONL instead (--output-format)"
            ) from None
        with pq.ParquetWriter(target, schema) as writer:
            for part in self.parts:
                table = pq.read_table(part)
                columns = {
                    name: table.column(name) if name in table.column_names else pa.nulls(len(table))
                    for name in schema.names
                }
                writer.write_table(pa.table(columns).cast(schema))


@contextmanager
def parquet_output(target: Path, where: str) -> Iterator[ParquetParts]:
    """Parts written into `.NAME.partial.parts`, joined into `target` only when the block ends; nothing is left
    behind if it fails."""
    folder = staging_path(target).with_name(staging_path(target).name + ".parts")
    shutil.rmtree(folder, ignore_errors=True)  # what a crashed earlier attempt left
    folder.mkdir()
    try:
        parts = ParquetParts(folder)
        yield parts
        with staged_path(target) as temporary:
            parts.join(temporary, where)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
