"""What a run predicts: the problem-type interface and its registry (base.py), one module per problem type
(single_label.py, multi_label.py, regression.py), the label space every stage carries (space.py), targets,
metrics and answers."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "ProblemType": "base", "problem_type": "base", "problem_types": "base", "REGISTRY": "base",
    "LabelSpace": "space", "Prediction": "outputs", "PredictionOut": "outputs",
    "evaluation_metrics": "metrics",
})  # fmt: skip
