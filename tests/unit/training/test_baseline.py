"""The TF-IDF baseline meets the run on the same footing: where the run's loss weighs skewed classes, the
baseline's fit weighs its texts the same way."""

import numpy as np
import pandas as pd

from lora_sentiment.problems.space import LabelSpace, resolve_class_weights
from lora_sentiment.training.baseline import score_baseline


def test_the_baseline_takes_the_runs_class_weights(imdb_frames):
    rows, unseen = imdb_frames
    train = pd.concat([rows[rows.label == 0].head(570), rows[rows.label == 1].head(30)])
    evaluation = unseen.groupby("label").head(200)
    space = LabelSpace("single-label", ["Negative", "Positive"])
    weights = resolve_class_weights("auto", space, train.label.to_numpy())
    plain, weighted = (score_baseline(train, evaluation, space, weights=w) for w in (None, weights))
    assert weighted.weighted and not plain.weighted
    # The rare class's probability rises on every text (from 30 of 600, weighted or not, TF-IDF names it for none of
    # these 400: 0.08 to 0.13 on average).
    rare = [b.scores[:, 1] for b in (plain, weighted)]
    assert (rare[1] > rare[0]).all() and rare[1].mean() > 1.3 * rare[0].mean(), (rare[0].mean(), rare[1].mean())
    tags = LabelSpace("multi-label", ["a", "b"])
    assert tags.problem.baseline_sample_weights(np.zeros((4, 2)), np.array([1.0, 3.0])) is None  # thresholds per tag


def test_the_cross_validated_baseline_takes_the_class_weights_too(tmp_path, imdb_frames):
    """TF-IDF folds (`train --folds`' baseline, the audit's TF-IDF scorer and member) are weighted as the runs' loss
    and train's own baseline: auto weighs these skewed folds, none does not."""
    from datasets import Dataset

    from lora_sentiment.config import TrainConfig
    from lora_sentiment.training.cross_fitting import FoldJob, assign_folds, cross_fitted_scores

    rows = imdb_frames[0]
    skewed = pd.concat([rows[rows.label == 0].head(285), rows[rows.label == 1].head(15)])
    train = Dataset.from_pandas(skewed[["text", "label"]].reset_index(drop=True))
    space = LabelSpace("single-label", ["Negative", "Positive"])
    fold = assign_folds(skewed.label.to_numpy(), space, 3, seed=0)
    rare = []
    for weights in ("none", "auto"):
        config = TrainConfig(model="unused", data="unused", class_weights=weights)
        job = FoldJob(train, None, space, config, tmp_path / f"tfidf-{weights}", "tfidf")
        scores, _ = cross_fitted_scores(job, fold, lambda _: None)
        rare.append(scores[:, 1])
    assert (rare[1] > rare[0]).all() and rare[1].mean() > 1.3 * rare[0].mean(), (rare[0].mean(), rare[1].mean())


def test_a_tag_on_no_training_text_fits_without_sklearns_warning():
    """One-vs-rest warned "Label not 2 is present in all training examples" once a tag on no training text (an audit
    fold without a rare tag printed it twice a fold); the tag is predicted absent."""
    import warnings

    from lora_sentiment.training.baseline import baseline_scores, fit_baseline

    space = LabelSpace("multi-label", ["joy", "anger", "grief"])
    texts = [f"so happy {i}" if i % 2 else f"so angry {i}" for i in range(20)]
    labels = np.array([[1.0, 0.0, 0.0] if i % 2 else [0.0, 1.0, 0.0] for i in range(20)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline = fit_baseline(texts, labels, space)
    assert not [w for w in caught if "present in all training examples" in str(w.message)]
    assert (baseline_scores(pipeline, ["so happy again"], space)[:, 2] < 0.5).all()
