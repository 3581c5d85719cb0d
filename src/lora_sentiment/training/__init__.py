"""Train stage: the recipe (recipe.py) over the HF Trainer (trainer.py), the run's record (report.py), the TF-IDF
baseline, experiment tracking, and `tune`'s Optuna search (tuning.py, search_space.py, tune_results.py)."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "train": "recipe", "TrainResult": "recipe", "TrainRecipe": "recipe",
    "build_trainer": "trainer", "training_arguments": "trainer", "FastPadding": "trainer", "weighted_loss": "trainer",
    "epoch_history": "report", "best_epoch_metrics": "report",
    "evaluate_baseline": "baseline",
    "tune": "tuning", "parse_search": "search_space",
})  # fmt: skip
