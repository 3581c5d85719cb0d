"""Intervals on the headline scores: each problem type's resampled metrics equal scikit-learn's on the whole
evaluation split, the 95 % interval holds the score and narrows with more texts, and the paired comparison tells
a better model from an equal one."""

import json

import numpy as np
import pytest

from lora_sentiment.problems.intervals import comparison_text, metric_intervals, paired_comparison, with_interval
from lora_sentiment.problems.metrics import evaluation_metrics
from lora_sentiment.problems.space import LabelSpace

RNG = np.random.default_rng(0)


def _single(n, classes=2, skill=0.8):
    labels = RNG.integers(0, classes, n)
    right = RNG.random(n) < skill
    predicted = np.where(right, labels, (labels + 1) % classes)
    scores = np.full((n, classes), 0.1 / max(classes - 1, 1))
    scores[np.arange(n), predicted] = 0.9
    return labels, scores


def _multi(n, tags=4):
    labels = (RNG.random((n, tags)) < 0.3).astype(float)
    scores = np.clip(labels * 0.6 + RNG.random((n, tags)) * 0.5, 0, 1)
    return labels, scores


def _regression(n):
    labels = RNG.uniform(1, 10, n)
    return labels, (labels + RNG.normal(0, 2, n)).reshape(-1, 1)


def _absent(n):
    """5 classes, the rows holding 3 of them and predicted 4: class 3 only predicted, class 4 neither."""
    labels, three = _single(n, 3)
    scores = np.hstack([three, np.zeros((n, 2))])
    scores[:10, 3] = 1.0
    return labels, scores


def _multi_absent(n):
    """6 tags, the rows given 4 of them: tag 4 never given but predicted on 10 rows, tag 5 neither."""
    labels, scores = _multi(n)
    labels, scores = np.hstack([labels, np.zeros((n, 2))]), np.hstack([scores, np.zeros((n, 2))])
    scores[:10, 4] = 0.9
    return labels, scores


CASES = {
    "single-label": (LabelSpace("single-label", ["a", "b"]), _single),
    "single-label, 3 classes": (LabelSpace("single-label", ["a", "b", "c"]), lambda n: _single(n, 3)),
    "single-label, classes absent": (LabelSpace("single-label", list("abcde")), _absent),
    "multi-label": (LabelSpace("multi-label", list("wxyz"), [0.5, 0.4, 0.6, 0.5]), _multi),
    "multi-label, tags absent": (
        LabelSpace("multi-label", list("uvwxyz"), [0.5, 0.4, 0.6, 0.5, 0.5, 0.5]),
        _multi_absent,
    ),  # fmt: skip
    "regression": (LabelSpace("regression", ["rating"]), _regression),
}


@pytest.mark.parametrize("case", CASES)
def test_resampled_metrics_on_the_whole_split_equals_scikit_learns_metrics(case):
    space, make = CASES[case]
    labels, scores = make(300)
    whole = space.problem.resampled_metrics(space, labels, scores, np.arange(300)[None, :])
    expected = evaluation_metrics(space, labels, scores, detailed=False)
    assert set(whole) == set(space.problem.metrics) & set(expected)  # every metric it has, not only the headline ones
    for metric in whole:
        assert whole[metric][0] == pytest.approx(expected[metric], abs=1e-9), metric


def test_macro_means_leave_out_the_classes_the_rows_neither_have_nor_were_given():
    """As scikit-learn's own default: a class with no text and no prediction has no F1 to average (a small split
    of a 1-10 rating read as 11 classes counted three such classes as 0)."""
    from sklearn.metrics import f1_score

    space = LabelSpace("single-label", list("abcde"))
    labels, scores = _absent(300)
    metrics = evaluation_metrics(space, labels, scores, detailed=False)
    predicted = scores.argmax(axis=1)
    assert metrics["f1_macro"] == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0))
    assert metrics["f1_macro"] > f1_score(labels, predicted, average="macro", labels=range(5), zero_division=0)


def test_multi_label_macro_leaves_out_the_tags_the_rows_neither_have_nor_were_given():
    """As for single-label classes: a rare tag absent from a small split and never predicted has no F1; one only
    predicted (false alarms) counts as 0."""
    from sklearn.metrics import f1_score

    space = LabelSpace("multi-label", list("uvwxyz"), [0.5, 0.4, 0.6, 0.5, 0.5, 0.5])
    labels, scores = _multi_absent(300)
    predicted = (scores >= np.array(space.thresholds)).astype(int)
    metrics = evaluation_metrics(space, labels, scores, detailed=False)
    assert metrics["f1_macro"] == pytest.approx(f1_score(labels, predicted, average="macro", labels=range(5)))
    assert metrics["f1_macro"] > f1_score(labels, predicted, average="macro", zero_division=0)  # tag z as 0


@pytest.mark.parametrize("case", CASES)
def test_the_interval_holds_the_score_and_narrows_with_more_texts(case):
    space, make = CASES[case]
    widths = []
    for n in (100, 2000):
        labels, scores = make(n)
        expected = evaluation_metrics(space, labels, scores, detailed=False)
        intervals = metric_intervals(space, labels, scores)
        assert set(intervals) == set(space.problem.metrics) & set(expected)  # every metric, the headline ones too
        for metric, (low, high) in intervals.items():
            assert low <= expected[metric] <= high, (metric, low, expected[metric], high)
        widths.append(intervals[space.problem.headline[0]][1] - intervals[space.problem.headline[0]][0])
    assert widths[1] < widths[0] / 3  # about 1 / sqrt(20) as wide


def test_intervals_are_seeded_and_accuracy_matches_the_binomial_width():
    space = LabelSpace("single-label", ["a", "b"])
    labels, scores = _single(1000, skill=0.8)
    first, again = metric_intervals(space, labels, scores), metric_intervals(space, labels, scores)
    assert first == again
    low, high = first["accuracy"]
    assert high - low == pytest.approx(2 * 1.96 * (0.8 * 0.2 / 1000) ** 0.5, rel=0.15)  # ±2.5 points
    assert metric_intervals(space, labels[:1], scores[:1]) == {}


def test_paired_comparison_tells_a_better_model_from_an_equal_one():
    space = LabelSpace("single-label", ["a", "b"])
    labels, good = _single(1000, skill=0.85)
    worse = good.copy()
    flip = np.flatnonzero(RNG.random(1000) < 0.15)  # 15 % of the answers made wrong or right at random
    worse[flip] = worse[flip][:, ::-1]
    verdict = paired_comparison(space, labels, good, worse)
    assert verdict["beyond_noise"] and verdict["better"] and verdict["difference"] > 0
    # metrics.json and `evaluate --json` write it as is: plain JSON types, `better` a real true, not 1.0
    assert json.loads(json.dumps(verdict))["better"] is True
    assert "The run is better, beyond the noise" in comparison_text(verdict, "The run", "the baseline")
    same = paired_comparison(space, labels, good, good)
    assert same["difference"] == 0 and not same["beyond_noise"] and same["better"] is None
    assert "within the noise of 1000 texts" in comparison_text(same, "the run", "the baseline")


def test_models_whose_thresholds_were_tuned_on_the_texts_are_compared_out_of_sample():
    """A multi-label run and its baseline tune their thresholds on the evaluation texts: compared there, the model
    that gains more from tuning looks better than it will be; `tuned_on` decides both by the same fifths."""
    from lora_sentiment.problems.multi_label import tune_thresholds

    labels, ours = _multi(400, tags=6)
    theirs = np.clip(ours + RNG.normal(0, 0.25, ours.shape), 0, 1)
    spaces = [LabelSpace("multi-label", list("abcdef"), tune_thresholds(labels, s).tolist()) for s in (ours, theirs)]
    verdict = paired_comparison(spaces[0], labels, ours, theirs, spaces[1], tuned_on=7)
    problem = spaces[0].problem
    estimates = [problem.decided_out_of_sample(labels, s, None, seed=7)["f1_macro"] for s in (ours, theirs)]
    assert verdict["thresholds"] == "out of sample" and verdict["difference"] == pytest.approx(
        estimates[0] - estimates[1]
    )
    assert verdict["beyond_noise"] and verdict["better"]  # the noisier scores are worse, tuned anywhere
    assert "texts, each fifth's tags decided by thresholds tuned on the other four: f1_macro +" in comparison_text(
        verdict, "The run", "the baseline")  # fmt: skip
    as_tuned = paired_comparison(spaces[0], labels, ours, theirs, spaces[1])
    assert as_tuned["thresholds"] == "as tuned" and as_tuned["difference"] != verdict["difference"]
    assert paired_comparison(spaces[0], labels[:9], ours[:9], theirs[:9], spaces[1], tuned_on=7)["thresholds"] == (
        "as tuned")  # too few texts for five parts  # fmt: skip
    single = LabelSpace("single-label", ["a", "b"])
    answers, good = _single(200)
    assert paired_comparison(single, answers, good, good[:, ::-1], tuned_on=7)["thresholds"] == "as tuned"


def test_the_log_line_carries_the_interval():
    assert with_interval(0.868, [0.846, 0.888], 1000) == "0.8680 (0.8460-0.8880, n = 1000)"
    space = LabelSpace("single-label", ["a", "b"])
    line = space.problem.headline_text({"accuracy": 0.868, "f1": 0.87, "samples": 1000,
                                        "intervals": {"accuracy": [0.846, 0.888], "f1": [0.85, 0.89]}})  # fmt: skip
    assert line == "Accuracy 0.8680 (0.8460-0.8880, n = 1000), F1 0.8700 (0.8500-0.8900)"
    assert space.problem.headline_text({"accuracy": 0.5, "f1": 0.4}) == "Accuracy 0.5000, F1 0.4000"


def test_skewed_classes_lead_with_macro_f1_in_the_line_and_the_comparison():
    """A model that answers the common class to every text scores accuracy 0.95 on texts 5 % rare, and two classes'
    F1 is the second class's, here the common one: skewed texts lead with macro-F1, and are compared on it."""
    from lora_sentiment.problems.single_label import skewed

    space = LabelSpace("single-label", ["flag", "keep"])
    assert skewed([20, 380]) and skewed([5, 50, 50]) and not skewed([40, 60]) and not skewed([0, 30, 30])
    labels = np.array([0] * 20 + [1] * 380)
    always = np.tile([0.1, 0.9], (400, 1))
    finds = always.copy()
    finds[:14] = [0.9, 0.1]  # 14 of the 20 rare texts found, 10 common ones mistaken for rare
    finds[20:30] = [0.9, 0.1]
    assert space.problem.headline_metrics(space.problem.support(labels)) == ("f1_macro", "accuracy")
    record = space.problem.evaluate(space, labels, always, detailed=True)
    assert space.problem.headline_text(record).startswith("Macro-F1 0.4872, Accuracy 0.9500")
    verdict = paired_comparison(space, labels, finds, always)  # accuracy: 0.96 against 0.95, inside the noise
    assert verdict["metric"] == "f1_macro" and verdict["better"] is True
    even = np.array([0, 1] * 200)
    assert paired_comparison(space, even, always, always)["metric"] == "accuracy"
    assert space.problem.headline_text(space.problem.evaluate(space, even, always, detailed=True)).startswith("Acc")
    note = space.problem.skew_note(labels, space.names, "auto")
    assert note.startswith("Skewed classes: flag is 20 of the 400 training texts (5.0%), keep 95%.")
    assert note.endswith("the loss weighs them balanced (--class-weights auto; none to turn it off).")
    assert "--class-weights auto or balanced" in space.problem.skew_note(labels, space.names, "none")
    assert "--class-weights" not in space.problem.skew_note(labels, space.names, '{"flag": 3}')
    assert space.problem.skew_note(even, space.names, "auto") == ""


def test_regression_resamples_correlate_as_scipy_does_each_one():
    from scipy import stats

    from lora_sentiment.problems.base import problem_type
    from lora_sentiment.problems.intervals import resamples
    from lora_sentiment.problems.space import LabelSpace

    rng = np.random.default_rng(0)
    targets = rng.integers(1, 11, 120).astype(float)  # ratings: many ties, ranked by their mean rank
    predicted = np.round(targets + rng.normal(0, 2.5, 120), 1)
    index = resamples(120, 0)
    draws = problem_type("regression").resampled_metrics(LabelSpace("regression", ["stars"]), targets,
                                                         predicted[:, None], index)  # fmt: skip
    assert np.allclose(draws["spearman"], [stats.spearmanr(targets[r], predicted[r])[0] for r in index])
    assert np.allclose(draws["pearson"], [stats.pearsonr(targets[r], predicted[r])[0] for r in index[:200]])
    constant = problem_type("regression").resampled_metrics(LabelSpace("regression", ["stars"]), targets,
                                                            np.ones((120, 1)), index)  # fmt: skip
    assert np.isnan(constant["spearman"]).all()  # an untrained head: no correlation, as scipy says
