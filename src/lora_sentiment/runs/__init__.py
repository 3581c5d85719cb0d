"""The run folder: the one owner of its file names (run.py), metrics.json typed (records.py), the model card,
figures and the text summary."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "Run": "run", "RunWorkspace": "run", "is_export": "run", "RunMetrics": "records", "summary": "summary",
})  # fmt: skip
