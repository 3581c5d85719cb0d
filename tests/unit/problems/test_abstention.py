"""Abstention: answers under --min-confidence (or, for numbers, with an interval wider than --max-interval) are
marked abstained with their best guess and probabilities kept, through the Python API, predict (texts and files),
serve (per request and a server default) and evaluate; the risk-coverage table shows what each P buys."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lora_sentiment import load_classifier
from lora_sentiment.cli import main
from lora_sentiment.errors import UserError
from lora_sentiment.problems.abstention import (
    Abstention,
    abstained,
    check_abstention,
    risk_coverage,
    threshold_text,
)
from lora_sentiment.problems.calibration import Calibration
from lora_sentiment.problems.outputs import PredictionOut
from lora_sentiment.problems.space import LabelSpace

BINARY = LabelSpace("single-label", ["neg", "pos"])


def test_each_problem_type_abstains_by_its_own_rule():
    scores = np.array([[0.95, 0.05], [0.4, 0.6]])
    held, uncertain = abstained(BINARY, scores, Abstention(min_confidence=0.9))
    assert held.tolist() == [False, True] and uncertain is None
    answer = PredictionOut.from_row(scores[1], BINARY, Abstention(min_confidence=0.9))
    assert answer.abstained and answer.label_name == "pos" and answer.probabilities["pos"] == 0.6  # the guess stays
    assert answer.answer == "abstained (pos)"
    assert PredictionOut.from_row(scores[1], BINARY).abstained is None  # no rule: no field

    tags = LabelSpace("multi-label", ["a", "b", "c"], thresholds=[0.5, 0.3, 0.5])
    answer = PredictionOut.from_row(np.array([0.97, 0.4, 0.02]), tags, Abstention(min_confidence=0.9))
    assert answer.abstained and answer.uncertain == ["b"] and answer.labels == ["a", "b"]
    sure = PredictionOut.from_row(np.array([0.97, 0.05, 0.02]), tags, Abstention(min_confidence=0.9))
    assert not sure.abstained and sure.uncertain == []

    values = LabelSpace("regression", ["rating"], calibration=Calibration("conformal", 100, interval=1.5, coverage=0.9))
    assert abstained(values, np.array([[5.0]]), Abstention(max_interval=2.0))[0].tolist() == [True]  # 3.0 wide
    assert abstained(values, np.array([[5.0]]), Abstention(max_interval=3.5))[0].tolist() == [False]


def test_a_rule_the_run_cannot_follow_is_refused_in_one_line():
    values = LabelSpace("regression", ["rating"])
    with pytest.raises(UserError, match="--min-confidence is for classifiers.*use --max-interval"):
        check_abstention(values, Abstention(min_confidence=0.9), "runs/r")
    with pytest.raises(UserError, match="needs a run with intervals"):
        check_abstention(values, Abstention(max_interval=1.0), "runs/r")
    with pytest.raises(UserError, match="--max-interval is for regression"):
        check_abstention(BINARY, Abstention(max_interval=1.0), "runs/r")


def test_risk_coverage_leaves_the_least_sure_out_first():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 2000)
    right = rng.random(2000) < confidence  # calibrated: as often right as it is sure
    labels = np.where(right, 1, 0)
    scores = np.stack([1 - confidence, confidence], axis=1)
    curve = risk_coverage(BINARY, labels, scores)
    table = {row["coverage"]: row for row in curve["table"]}
    assert curve["metric"] == "accuracy" and list(table) == [1.0, 0.95, 0.9, 0.8]
    assert table[1.0]["accuracy"] == pytest.approx(right.mean())
    assert table[0.8]["accuracy"] > table[1.0]["accuracy"] and table[0.8]["min_confidence"] == pytest.approx(
        0.6, abs=0.02
    )
    assert risk_coverage(LabelSpace("regression", ["v"]), labels, scores[:, :1]) is None  # no intervals: no curve


def test_regression_abstains_where_its_band_is_wide_and_draws_the_curve_by_width():
    bands = Calibration("conformal", 600, interval=1.5, coverage=0.9, band_edges=[4.0, 7.0],
                        band_intervals=[0.5, 2.5, 0.5])  # fmt: skip
    values = LabelSpace("regression", ["rating"], calibration=bands)
    predicted = np.array([[2.0], [5.5], [9.0]])
    assert abstained(values, predicted, Abstention(max_interval=2.0))[0].tolist() == [False, True, False]
    assert PredictionOut.from_row(predicted[1], values).interval == pytest.approx([3.0, 8.0])
    rng = np.random.default_rng(1)
    guesses = rng.uniform(1, 10, 3000)
    middle = (guesses >= 4.0) & (guesses < 7.0)
    truth = guesses + rng.normal(0, 1, 3000) * np.where(middle, 2.5, 0.5)
    curve = risk_coverage(values, truth, guesses.reshape(-1, 1))
    table = {row["coverage"]: row for row in curve["table"]}
    assert curve["metric"] == "mae" and curve["flag"] == "max_interval"
    assert table[0.8]["mae"] < 0.8 * table[1.0]["mae"]  # the scattered middle left out first (0.67 vs 0.93 here)
    assert table[0.8]["max_interval"] == 5.0 and table[1.0]["max_interval"] == 5.0  # the middle band, 1/3 of texts
    assert table[0.95]["max_interval"] == 5.0 and threshold_text(curve, table[0.8]) == "--max-interval 5"


def test_abstention_through_every_path(tmp_path, trained_run, small_csv, capsys):
    run = str(trained_run)
    classifier = load_classifier(run, precision="fp32", min_confidence=0.99)  # a tiny model: never that sure
    made = classifier.predict(["A wonderful, moving film."])
    assert made[0].abstained is True and made[0].label_name in ("Negative", "Positive")

    assert main(["predict", run, "--text", "Fine.", "--min-confidence", "0.99", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[0])
    assert answer["abstained"] is True and set(answer["probabilities"]) == {"Negative", "Positive"}
    assert main(["predict", run, "--text", "Fine.", "--min-confidence", "0.5"]) == 0
    assert "abstained" not in capsys.readouterr().out

    out = tmp_path / "p.csv"
    assert main(["predict", run, "--input", str(small_csv), "--output", str(out), "--min-confidence", "0.99",
                 "--no-progress"]) == 0  # fmt: skip
    frame = pd.read_csv(out)
    assert len(frame) == 96 and frame.abstained.all() and frame.predicted_label.notna().all()  # marked, not dropped

    assert main(["evaluate", run, "--data", str(small_csv), "--min-confidence", "0.99", "--json"]) == 0
    selective = json.loads(capsys.readouterr().out)["abstention"]
    assert selective["answered"] == 0.0 and selective["accuracy_answered"] is None and selective["accuracy_all"] > 0

    from lora_sentiment.serving.app import create_app, run_info

    server = load_classifier(run, precision="fp32", min_confidence=0.99)  # the server's default
    with TestClient(create_app(server, run_info=run_info(run))) as client:
        by_default = client.post("/predict", json={"texts": ["Fine."]}).json()["predictions"][0]
        asked = client.post("/predict", json={"texts": ["Fine."], "min_confidence": 0.5}).json()["predictions"][0]
        wrong = client.post("/predict", json={"texts": ["Fine."], "max_interval": 1.0})  # no such field here
    assert by_default["abstained"] is True and asked["abstained"] is False
    assert wrong.status_code == 422 and "max_interval" in wrong.text  # a classifier's schema has no such field

    card = (trained_run / "README.md").read_text()
    assert "| answered | accuracy | P |" in card and (trained_run / "risk_coverage.png").stat().st_size > 5000


def test_a_wrong_abstention_flag_is_one_line_and_exit_2(trained_run, capsys):
    assert main(["predict", str(trained_run), "--text", "Fine.", "--max-interval", "2"]) == 2
    err = capsys.readouterr().err
    assert "--max-interval is for regression" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_worker_processes_mark_the_same_rows(tmp_path, trained_run, small_csv):
    """--workers 2: each worker process loads the run with the same --min-confidence and marks the same rows."""
    frames = []
    for workers in ("1", "2"):
        out = tmp_path / f"p{workers}.csv"
        argv = ["predict", str(trained_run), "--input", str(small_csv), "--output", str(out), "--min-confidence",
                "0.5001", "--workers", workers, "--chunk-size", "16", "--no-progress"]  # fmt: skip
        assert main(argv) == 0
        frames.append(pd.read_csv(out))
    assert frames[0].abstained.tolist() == frames[1].abstained.tolist()
    assert (frames[0].abstained == (frames[0].probability < 0.5001)).all()
