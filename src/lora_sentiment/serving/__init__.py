"""Serve stage: the FastAPI app (app.py), micro-batching (batcher.py), one model or many with a watched folder
of runs (models.py), and the page (web/index.html)."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "serve": "app", "create_app": "app", "MicroBatcher": "batcher", "OneModel": "models", "ManyModels": "models",
})  # fmt: skip
