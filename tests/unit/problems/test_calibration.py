"""Calibration's mechanics on constructed outputs whose true probabilities are known: temperature scaling finds
the temperature that made them overconfident, a temperature per tag likewise, the conformal interval holds its
share (in each band of the predicted value, where there is room for bands), the figures (ECE, Brier, NLL) say
what they should, and a LabelSpace carries and applies it."""

from __future__ import annotations

import numpy as np
import pytest

from lora_sentiment.problems.calibration import (
    BAND_TEXTS,
    MAX_BANDS,
    Calibration,
    calibrate,
    conformal_quantile,
    expected_calibration_error,
    probability_quality,
)
from lora_sentiment.problems.space import LabelSpace


def _overconfident(n: int, temperature: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Binary logits T times too sure: the true probability of class 1 is sigmoid(z / T)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z / temperature))).astype(int)
    return np.stack([-z / 2, z / 2], axis=1), labels


def test_temperature_scaling_finds_the_temperature_and_keeps_every_answer():
    logits, labels = _overconfident(4000, 2.5)
    space = LabelSpace("single-label", ["neg", "pos"])
    raw = space.scores(logits)
    fitted, report = calibrate(space, labels, raw)
    assert fitted.method == "temperature" and fitted.temperatures[0] == pytest.approx(2.5, abs=0.2)
    assert report["applied"] is True
    assert report["before"]["ece"] > 0.1 and report["after"]["ece"] < 0.03  # cross-fitted
    assert report["after"]["nll"] < report["before"]["nll"] and report["after"]["brier"] < report["before"]["brier"]
    calibrated = LabelSpace("single-label", ["neg", "pos"], calibration=fitted).scores(logits)
    assert (calibrated.argmax(1) == raw.argmax(1)).all() and np.allclose(calibrated.sum(1), 1)
    assert calibrated.max(1).mean() < raw.max(1).mean()  # less sure, as the data is


def test_a_temperature_per_tag_and_a_tag_never_on_keeps_its_outputs():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, size=(3000, 3))
    truth = 1 / (1 + np.exp(-z / np.array([1.0, 2.0, 1.0])))
    tags = (rng.random(z.shape) < truth).astype(int)
    tags[:, 2] = 0  # never on in these rows: nothing to fit
    space = LabelSpace("multi-label", ["a", "b", "c"])
    fitted, report = calibrate(space, tags, space.scores(z))
    a, b, c = fitted.temperatures
    assert a == pytest.approx(1.0, abs=0.15) and b == pytest.approx(2.0, abs=0.25) and c == 1.0
    assert report["temperatures"]["max"] == pytest.approx(b, abs=1e-3)


def test_the_conformal_interval_holds_its_share():
    # n = 9, 90 %: the ceil(10 * 0.9) = 9th smallest residual; 99 %: past n, the largest
    assert conformal_quantile(np.arange(1, 10), 0.9) == 9 and conformal_quantile(np.arange(1, 10), 0.99) == 9
    assert conformal_quantile(-np.arange(1, 20), 0.5) == 10  # absolute values; ceil(20 * 0.5) = 10th
    rng = np.random.default_rng(3)
    predicted = rng.normal(5, 2, size=4000)
    values = predicted + rng.normal(0, 1, size=4000)
    space = LabelSpace("regression", ["rating"])
    fitted, report = calibrate(space, values, predicted.reshape(-1, 1), coverage=0.9)
    assert fitted.interval == pytest.approx(1.645, abs=0.1) and report["coverage"] == pytest.approx(0.9, abs=0.02)
    calibrated = LabelSpace("regression", ["rating"], calibration=fitted)
    assert np.array_equal(calibrated.scores(predicted.reshape(-1, 1)), predicted.reshape(-1, 1))  # values unchanged
    answer = calibrated.problem.answer(np.array([4.0]), calibrated)
    (half,) = fitted.half_widths(np.array([4.0]))
    assert answer["interval"] == pytest.approx([4.0 - half, 4.0 + half])
    # the noise is the same everywhere: every band of the predicted value gets about the same width
    assert len(fitted.band_intervals) == MAX_BANDS and np.ptp(fitted.band_intervals) < 0.3


def _uneven(rng, n):
    """Predicted ratings 1-10 whose true values scatter little at the ends and much in the middle third (as a mixed
    review's rating does)."""
    predicted = rng.uniform(1, 10, n)
    spread = np.where(np.abs(predicted - 5.5) < 1.5, 2.0, 0.3)
    return predicted, predicted + rng.normal(0, 1, n) * spread


def test_banded_intervals_hold_their_share_in_each_band_where_one_width_cannot():
    rng = np.random.default_rng(5)
    predicted, values = _uneven(rng, 1000)
    space = LabelSpace("regression", ["rating"])
    fitted, report = calibrate(space, values, predicted.reshape(-1, 1), coverage=0.9)
    assert len(fitted.band_intervals) == MAX_BANDS and report["coverage"] == pytest.approx(0.9, abs=0.03)
    # cross-fitted (each half's bands on the other half): the middle band held near its share, one width did not
    assert report["band_coverage"][1] > 0.8 and report["band_coverage_one_width"][1] < 0.75
    widths = fitted.band_intervals
    assert widths[1] > 2.5 * max(widths[0], widths[2])  # wide in the middle third
    new_predicted, new_values = _uneven(rng, 20000)  # texts the fit never saw
    half, errors = fitted.half_widths(new_predicted), np.abs(new_values - new_predicted)
    band = np.searchsorted(fitted.band_edges, new_predicted, side="right")
    for b in range(MAX_BANDS):  # each band holds its share on its own (Mondrian conformal)
        assert (errors <= half)[band == b].mean() == pytest.approx(0.9, abs=0.035), b
    # one width for every text holds 90 % overall by leaving the middle short and the ends over-covered
    assert (errors <= fitted.interval)[band == 1].mean() < 0.75 and (errors <= fitted.interval)[band != 1].mean() > 0.97
    assert Calibration.from_json(fitted.to_json()).half_widths(new_predicted[:50]) == pytest.approx(half[:50], abs=1e-5)


def test_too_few_texts_for_two_bands_keep_one_width():
    rng = np.random.default_rng(6)
    predicted, values = _uneven(rng, 2 * BAND_TEXTS - 1)
    fitted, report = calibrate(LabelSpace("regression", ["rating"]), values, predicted.reshape(-1, 1), coverage=0.9)
    assert fitted.band_intervals is None and "band_coverage" not in report
    tied = np.repeat([2.0, 9.0], [BAND_TEXTS * 2 - 10, 10])  # two bands by count, but one value holds nearly all
    assert calibrate(LabelSpace("regression", ["r"]), tied, tied.reshape(-1, 1), coverage=0.9)[0].band_intervals is None
    assert fitted.band_intervals is None and fitted.half_widths(np.array([1.0, 5.5])).tolist() == [fitted.interval] * 2
    old = Calibration.from_json({"method": "conformal", "fitted_on": 100, "interval": 1.5, "coverage": 0.9})
    assert old.half_widths(np.array([2.0, 9.0])).tolist() == [1.5, 1.5]  # a run saved before bands: one width


def test_ece_brier_and_nll_on_known_outputs():
    # Every output says 0.8 and 80 % are right: calibrated, whatever the bins
    outcome = np.array([1] * 80 + [0] * 20)
    assert expected_calibration_error(np.full(100, 0.8), outcome) == pytest.approx(0.0, abs=1e-12)
    # Every output says 0.9 and half are right: off by 0.4
    assert expected_calibration_error(np.full(100, 0.9), np.array([1, 0] * 50)) == pytest.approx(0.4)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    quality = probability_quality(probabilities, np.array([0, 0]))
    assert quality["brier"] == pytest.approx(((0.1**2 + 0.1**2) + (0.8**2 + 0.8**2)) / 2)
    assert quality["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.2)) / 2)
    assert sum(count for _, _, count in quality["reliability"]) == 2


def test_a_label_space_records_and_applies_its_calibration():
    calibration = Calibration("temperature", 100, temperatures=[2.0])
    space = LabelSpace("single-label", ["neg", "pos"], calibration=calibration)
    again = LabelSpace.from_json(space.to_json())
    assert again == space and again.uncalibrated().calibration is None
    logits = np.array([[0.0, 2.0]])
    assert again.scores(logits) == pytest.approx(LabelSpace("single-label", ["neg", "pos"]).scores(logits / 2))
    # An export's: the temperature is in its weights, so its outputs are left as they are
    folded = LabelSpace(
        "single-label", ["neg", "pos"], calibration=Calibration("temperature", 100, [2.0], in_weights=True)
    )
    assert LabelSpace.from_json(folded.to_json()).scores(logits) == pytest.approx(
        LabelSpace("single-label", ["neg", "pos"]).scores(logits)
    )
    # Runs made before calibration existed read as uncalibrated
    assert LabelSpace.from_json({"label_names": ["a", "b"]}).calibration is None


def test_the_ece_floor_is_what_a_calibrated_model_shows_on_as_many_texts():
    from lora_sentiment.problems.calibration import ece_floor

    rng = np.random.default_rng(4)
    confidence = rng.uniform(0.5, 1.0, 1000)
    floor = ece_floor(confidence)
    drawn = [expected_calibration_error(confidence, rng.random(1000) < confidence) for _ in range(50)]
    assert 0.01 < floor < 0.06 and abs(floor - np.median(drawn)) < 0.006  # binned ECE is biased up by sampling
    assert ece_floor(np.tile(confidence, 20)) < floor / 3  # more texts, a lower floor
    logits, labels = _overconfident(1000, 2.5)
    space = LabelSpace("single-label", ["neg", "pos"])
    report = calibrate(space, labels, space.scores(logits))[1]
    assert "ece_floor" in report["after"] and "ece_floor" not in report["before"]


def test_outputs_already_calibrated_are_kept_as_they_are():
    """Temperatures fitted on one half that do not help the other half are not applied: the report says so."""
    logits, labels = _overconfident(400, 1.0, seed=5)  # calibrated as they are (seeded: a half's fit does not help)
    space = LabelSpace("single-label", ["neg", "pos"])
    fitted, report = calibrate(space, labels, space.scores(logits))
    assert fitted is None and report["applied"] is False and report["after"]["nll"] >= report["before"]["nll"]
    assert report["temperature"] == pytest.approx(1.0, abs=0.1)
    from lora_sentiment.runs.summary import calibration_text

    text = calibration_text(report)
    assert text.startswith("Calibration: not applied;") and "raw outputs are kept" in text


def test_the_calibrated_loss_ignores_how_sure_a_model_is_and_nothing_else():
    """What single-label runs keep their epoch by: the same for outputs made 3x too sure (the raw loss rises), lower
    for outputs that separate the classes better, never above the raw loss."""
    from lora_sentiment.problems.calibration import calibrated_nll, softmax_nll
    from lora_sentiment.problems.single_label import PROBLEM

    logits, labels = _overconfident(2000, temperature=1.0)
    from scipy.special import softmax

    towards_truth = np.where(np.eye(2)[labels] > 0, 1.0, -1.0)  # each text's logits moved towards its true class
    honest, too_sure, sharper = (softmax(z, axis=1) for z in (logits, 3 * logits, logits + towards_truth))
    assert softmax_nll(3 * logits, labels) > softmax_nll(logits, labels) + 0.1
    honest, too_sure, sharper = np.log(honest), np.log(too_sure), np.log(sharper)  # as the problem type's logits
    assert calibrated_nll(labels, too_sure) == pytest.approx(calibrated_nll(labels, honest), abs=1e-3)
    assert calibrated_nll(labels, sharper) < calibrated_nll(labels, honest) - 0.05
    assert calibrated_nll(labels, too_sure) <= softmax_nll(too_sure, labels) + 1e-9
    assert PROBLEM.best_metric == "calibrated_loss" and "calibrated_loss" in PROBLEM.lower_is_better
