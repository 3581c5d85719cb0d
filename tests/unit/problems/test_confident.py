"""Confident learning on constructed probabilities: a known joint gives known thresholds, counts, noise rates and
flags; the multi-label and regression rules."""

import numpy as np
import pytest

from lora_sentiment.problems.confident import (
    class_issues,
    confident_joint,
    find_label_issues,
    noise_rates,
    normalized_margin,
    residual_issues,
    tag_issues,
)


def test_thresholds_joint_and_flags_of_a_built_example():
    # Class 0: four texts, one of which (row 3) the scores call class 1; class 1: four texts, all clean.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.2, 0.8], [0.4, 0.6]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    cj = confident_joint(probs, labels)
    assert cj.thresholds == pytest.approx([(0.9 + 0.8 + 0.7 + 0.2) / 4, (0.9 + 0.7 + 0.8 + 0.6) / 4])
    # t0 = 0.65, t1 = 0.75: row 3 counts as 1 (0.8 >= 0.75), row 5 (0.7) and row 7 (0.6) reach no threshold.
    assert cj.true_label.tolist() == [0, 0, 0, 1, 1, -1, 1, -1]
    assert cj.joint.tolist() == [[3, 1], [0, 2]]
    # Calibrated: row 0 -> [3, 1] scaled to 4 texts, row 1 -> [0, 2] scaled to 4 texts; normalised by 8.
    assert cj.estimated == pytest.approx(np.array([[3, 1], [0, 4]]) / 8)
    assert noise_rates(cj.estimated) == pytest.approx([0.25, 0.0])
    flagged, _ = find_label_issues(probs, labels)
    assert flagged.tolist() == [False, False, False, True, False, False, False, False]


def test_prune_by_noise_rate_caps_the_flags_at_the_estimated_count():
    rng = np.random.default_rng(0)
    n = 2000
    truth = rng.integers(0, 3, n)
    probs = np.full((n, 3), 0.05)
    probs[np.arange(n), truth] = 0.9  # confident, correct scores of the true class
    given = truth.copy()
    flip = rng.choice(n, 200, replace=False)
    given[flip] = (truth[flip] + 1) % 3
    flagged, cj = find_label_issues(probs, given)
    assert set(np.flatnonzero(flagged)) == set(flip)  # every flip found, nothing else
    assert 1 - np.trace(cj.estimated) == pytest.approx(0.1, abs=0.01)


def test_class_issues_rank_suggest_and_summarise():
    # t0 = (0.95 + 0.9 + 0.2) / 3, t1 = (0.7 + 0.75) / 2 = 0.725: row 4 (0.8) is confidently positive, row 2 is
    # confidently nothing; Q = [[2, 1], [0, 2]] / 5, so round(5 * 0.2) = 1 text given neg is pruned: row 4.
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.25, 0.75], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1, 0])
    issues = class_issues(probs, labels, ["neg", "pos"])
    assert issues.flagged.tolist() == [False, False, False, False, True]
    assert issues.suggested[4] == 1
    assert issues.score[4] == pytest.approx(0.8)
    assert issues.summary["per_class"]["neg"]["flagged"] == 1
    assert issues.summary["confident_joint"]["counts"] == [[2, 1], [0, 1]]
    assert normalized_margin(probs, labels)[4] == pytest.approx(-0.6)


def test_a_class_never_given_is_never_the_confident_label():
    probs = np.array([[0.5, 0.1, 0.4], [0.6, 0.1, 0.3], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]])
    labels = np.array([0, 0, 2, 2])
    cj = confident_joint(probs, labels)
    assert np.isinf(cj.thresholds[1]) and (cj.true_label != 1).all()
    assert np.isnan(noise_rates(cj.estimated)[1])


def test_tag_issues_flip_the_flagged_tags_only():
    rng = np.random.default_rng(1)
    n = 400
    truth = (rng.random((n, 3)) < 0.3).astype(float)
    probs = np.where(truth > 0, 0.9, 0.08) + rng.normal(0, 0.02, (n, 3))
    given = truth.copy()
    wrong = rng.choice(n, 20, replace=False)
    given[wrong, 1] = 1 - given[wrong, 1]
    issues = tag_issues(np.clip(probs, 0, 1), given, ["a", "b", "c"])
    flagged = set(np.flatnonzero(issues.flagged))
    # C+NR is conservative: it prunes the estimated count, which the calibrated joint puts near the truth.
    assert flagged <= set(wrong) and len(flagged) >= 16
    for i in flagged:
        assert issues.suggested[i].tolist() == truth[i].tolist()
    assert issues.score[wrong].min() > np.delete(issues.score, wrong).max()  # every flip ranks above every clean row
    per_tag = issues.summary["per_tag"]["b"]
    assert per_tag["flagged_missing"] + per_tag["flagged_extra"] == len(flagged)
    assert issues.summary["per_tag"]["a"]["flagged_missing"] == 0


def test_a_tag_the_scorer_barely_knows_is_not_added_where_the_scorer_calls_it_absent():
    """A rare tag (5 of 200 texts) whose scores are all a few per cent: the paper's threshold for "present" is the
    mean score of those 5, and half the other texts reach it. Counted as "present" against the given "absent" only
    from 0.5 as well, as tag_issues counts, none is; a text whose scorer says a tag is present (0.95) with the tag
    not given is still flagged, and the 5 texts given the tag are judged as the paper judges them."""
    rng = np.random.default_rng(0)
    given = np.zeros((200, 2), dtype=int)
    given[:100, 0] = 1
    given[:5, 1] = 1
    probs = np.stack([np.where(given[:, 0] == 1, 0.9, 0.1), rng.uniform(0.0, 0.05, 200)], axis=1)
    probs[150, 0] = 0.95  # tag a not given, clearly present
    paper = tag_issues(probs, given, ["a", "b"], floor=0.0)
    assert paper.summary["per_tag"]["b"]["flagged_missing"] > 50  # the failure: b suggested for many texts
    issues = tag_issues(probs, given, ["a", "b"])
    assert issues.summary["per_tag"]["b"]["flagged_missing"] == 0
    assert issues.flagged[150] and issues.suggested[150].tolist() == [1, 0]
    assert issues.summary["estimated_noise_rate"] < paper.summary["estimated_noise_rate"]
    for key in ("flagged_extra", "noise_rate_given"):  # the given "present" side is the paper's
        assert issues.summary["per_tag"]["b"][key] == paper.summary["per_tag"]["b"][key]


def test_residual_issues_flag_values_far_outside_the_residuals():
    rng = np.random.default_rng(2)
    predicted = rng.uniform(1, 10, 500)
    values = predicted + rng.normal(0, 0.5, 500)
    values[[7, 70]] += [6.0, -7.0]  # 12+ robust SDs away
    issues = residual_issues(predicted, values)
    assert set(np.flatnonzero(issues.flagged)) == {7, 70}
    assert issues.suggested[7] == pytest.approx(predicted[7])
    bands = issues.summary["residuals"]["bands"]
    assert len(bands) == 3 and all(band["robust_sd"] == pytest.approx(0.5, abs=0.1) for band in bands)


def test_residuals_are_judged_against_texts_predicted_alike():
    """Residuals tight where the prediction is low or high and wide in the middle (as a two-humped rating scale
    leaves them): a value 4 from its prediction is far out among the tight ones and ordinary among the wide."""
    rng = np.random.default_rng(3)
    predicted = np.sort(rng.uniform(1, 10, 600))
    spread = np.where((predicted > 4) & (predicted < 7), 3.0, 0.5)
    values = predicted + rng.normal(0, 1, 600) * spread
    tight, wide = 50, 300
    values[[tight, wide]] = predicted[[tight, wide]] + 4.0
    issues = residual_issues(predicted, values)
    assert issues.flagged[tight] and not issues.flagged[wide]
    assert issues.flagged.sum() <= 5  # few false alarms among 600
    sds = [band["robust_sd"] for band in issues.summary["residuals"]["bands"]]
    assert len(sds) == 3 and sds[1] > 3 * max(sds[0], sds[2])
    few = residual_issues(predicted[:150], values[:150])  # fewer than two bands of 100 texts: one spread for all
    assert len(few.summary["residuals"]["bands"]) == 1


def test_the_constant_guess_each_type_scores_against():
    from lora_sentiment.problems.space import LabelSpace

    single = LabelSpace(problem_type="single-label", names=["a", "b", "c"])
    np.testing.assert_allclose(single.problem.constant_scores(single, np.array([0, 0, 2, 0])), [0.75, 0, 0.25])
    tags = LabelSpace(problem_type="multi-label", names=["x", "y"])
    np.testing.assert_allclose(tags.problem.constant_scores(tags, np.array([[1, 0], [1, 1]])), [1.0, 0.5])
    value = LabelSpace(problem_type="regression", names=["stars"])
    np.testing.assert_allclose(value.problem.constant_scores(value, np.array([2.0, 4.0, 9.0])), [5.0])
