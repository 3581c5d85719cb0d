"""Model stage: tokenizer with a pad token, classifier with a fresh head and LoRA (model.py), where and in what
precision it runs (device.py), and the processes of a distributed run (distributed.py)."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "setup_model": "model", "ModelSetup": "model", "load_run_model": "model", "load_classifier_model": "model",
    "default_device": "device", "resolve_precision": "device",
})  # fmt: skip
