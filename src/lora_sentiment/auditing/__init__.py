"""`audit`: likely label errors (confident learning on k-fold out-of-sample scores), duplicates with conflicting
labels, and leaks between the training and evaluation splits. recipe.py composes folds.py (the cross-fitting),
findings.py (what is flagged) and outputs.py (what is written); the maths lives in problems/confident.py and
data/duplicates.py."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {"audit": "recipe", "AuditResult": "recipe", "check_audit": "recipe"})
