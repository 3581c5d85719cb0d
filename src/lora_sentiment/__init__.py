"""LoRA fine-tuning of transformer encoders for text classification (IMDB sentiment by default).

from lora_sentiment import TrainConfig, train, load_classifier, load_classifiers
result = train(TrainConfig(data="reviews.csv", output_dir="runs/reviews"))
load_classifier("runs/reviews").predict(["Loved it."])
load_classifiers(["runs/reviews", "runs/stars"]).predict(["Loved it."], model="stars")  # one base in memory
open_predictor("exports/reviews-onnx").predict(["Loved it."])  # a run, an export or several runs: one door
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import _moved
from .config import PRESETS, TrainConfig, build_config
from .errors import UserError

__version__ = "0.3.0"

# The public API, loaded on first use: torch and transformers stay out of `import lora_sentiment` and --help.
# (No `serve` here: `lora_sentiment.serve` is the 0.2 module path of serving.app; `serving.serve` starts a server.)
_LAZY = {
    "train": "training.recipe",
    "TrainResult": "training.recipe",
    "tune": "training.tuning",
    "audit": "auditing.recipe",
    "AuditOptions": "options",
    "load_classifier": "inference.classifier",
    "Classifier": "inference.classifier",
    "load_classifiers": "inference.shared_base",
    "ClassifierSet": "inference.shared_base",
    "Prediction": "problems.outputs",
    "Predictor": "inference.base",
    "LoadOptions": "inference.base",
    "open_predictor": "opening",
    "export_run": "export.writing",
    "predict_file": "batch.files",
    "LabelSpace": "problems.space",
}
__all__ = [
    "PRESETS", "TrainConfig", "UserError", "build_config", "train", "TrainResult", "tune", "audit", "AuditOptions",
    "load_classifier", "Classifier", "load_classifiers", "ClassifierSet", "Prediction", "Predictor", "LoadOptions",
    "open_predictor", "export_run", "predict_file", "LabelSpace",
]  # fmt: skip

if TYPE_CHECKING:
    from .auditing.recipe import audit
    from .batch.files import predict_file
    from .export.writing import export_run
    from .inference.base import LoadOptions, Predictor
    from .inference.classifier import Classifier, load_classifier
    from .inference.shared_base import ClassifierSet, load_classifiers
    from .opening import open_predictor
    from .options import AuditOptions
    from .problems.outputs import Prediction
    from .problems.space import LabelSpace
    from .training.recipe import TrainResult, train
    from .training.tuning import tune

_moved.install()  # lora_sentiment.prediction and the other 0.2 module paths still import (deprecated)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lora_sentiment' has no attribute {name!r}")
