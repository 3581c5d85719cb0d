"""Batch stage: files of any size predicted in chunks (files.py), in this process or worker processes
(workers.py), into the problem type's columns (columns.py); folders of files on Ray Data (ray_data.py)."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "predict_file": "files", "BatchSummary": "files",
    "with_predictions": "columns", "ChunkJob": "columns", "prediction_columns": "columns",
    "open_in_worker": "workers",
    "predict_on_ray": "ray_data",
    # 0.2's batch.py also held the table formats, now in data/tables.py
    "INPUT_FORMATS": "..data.tables", "OUTPUT_FORMATS": "..data.tables", "resolve_format": "..data.tables",
    "read_chunks": "..data.tables", "write_chunk": "..data.tables", "checked_chunks": "..data.tables",
    "checked_output": "..data.tables",
})  # fmt: skip
