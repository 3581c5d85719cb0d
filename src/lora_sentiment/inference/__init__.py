"""Predict stage: the one Predictor protocol (base.py), a run as a torch classifier (classifier.py), several runs
on shared base models (shared_base.py, shared_model.py), and evaluation on labelled data (evaluation.py)."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "Predictor": "base", "PredictorSet": "base", "PredictorBase": "base",
    "Classifier": "classifier", "load_classifier": "classifier", "predict_logits": "classifier",
    "ClassifierSet": "shared_base", "load_classifiers": "shared_base",
    "evaluate_on": "evaluation",
})  # fmt: skip
