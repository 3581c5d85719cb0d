"""LoRA fine-tuning of transformer encoders for text classification (IMDB sentiment by default).

from lora_sentiment import TrainConfig, train, load_classifier, load_classifiers
result = train(TrainConfig(data="reviews.csv", output_dir="runs/reviews"))
load_classifier("runs/reviews").predict(["Loved it."])
load_classifiers(["runs/reviews", "runs/stars"]).predict(["Loved it."], model="stars")  # one base in memory
"""

from typing import TYPE_CHECKING, Any

from .config import PRESETS, TrainConfig, build_config
from .errors import UserError

__version__ = "0.2.0"
__all__ = [
    "PRESETS",
    "TrainConfig",
    "UserError",
    "build_config",
    "train",
    "load_classifier",
    "load_classifiers",
    "Classifier",
    "ClassifierSet",
    "Prediction",
]

if TYPE_CHECKING:
    from .multi import ClassifierSet, load_classifiers
    from .prediction import Classifier, Prediction, load_classifier
    from .training import train


def __getattr__(name: str) -> Any:
    # torch / transformers load on first use, so `import lora_sentiment` and the CLI's --help stay fast.
    if name == "train":
        from .training import train

        return train
    if name in {"load_classifier", "Classifier", "Prediction"}:
        from . import prediction

        return getattr(prediction, name)
    if name in {"load_classifiers", "ClassifierSet"}:
        from . import multi

        return getattr(multi, name)
    raise AttributeError(f"module 'lora_sentiment' has no attribute {name!r}")
