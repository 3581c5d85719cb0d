"""A run calibrates its outputs after training (problems/calibration.py), records it where every path reads it,
and shows it in its card and report; --calibration none keeps the model's own outputs."""

from __future__ import annotations

import json

import numpy as np

from lora_sentiment import TrainConfig, load_classifier, train
from lora_sentiment.cli import main
from lora_sentiment.runs.run import Run


def test_the_shared_run_is_calibrated_and_says_so(trained_run, capsys):
    run = Run.open(trained_run)
    calibration = run.space.calibration
    assert calibration.method == "temperature" and calibration.fitted_on == 60 and calibration.temperatures[0] > 0
    assert json.loads((trained_run / "labels.json").read_text())["calibration"]["temperatures"] == [
        round(calibration.temperatures[0], 6)
    ]
    report = run.metrics.final["calibration"]
    assert report["temperature"] == round(calibration.temperatures[0], 4) and "cross-fitted" in report["checked_by"]
    assert len(report["after"]["reliability"]) >= 2 and (trained_run / "reliability.png").stat().st_size > 5000
    card = (trained_run / "README.md").read_text()
    assert "Calibration: temperature" in card and "cross-fitted" in card and "reliability.png" in card
    assert main(["report", str(trained_run), "--no-plots"]) == 0
    assert "Calibration: temperature" in capsys.readouterr().out

    # What a user reads is the raw softmax divided by the temperature: the same answer, surer or less sure.
    classifier = load_classifier(trained_run, precision="fp32")
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    calibrated = classifier.predict_scores(texts)
    classifier.space = classifier.space.uncalibrated()
    raw = classifier.predict_scores(texts)
    logits = np.log(raw)
    expected = np.exp(logits / calibration.temperatures[0])
    assert np.allclose(calibrated, expected / expected.sum(1, keepdims=True), atol=1e-6)
    assert (calibrated.argmax(1) == raw.argmax(1)).all()


def test_calibration_none_keeps_the_raw_outputs(tmp_path, tiny_distilbert, small_csv, imdb_frames):
    imdb_frames[1].groupby("label").head(30)[["text", "label"]].to_csv(tmp_path / "eval.csv", index=False)
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), eval_data=str(tmp_path / "eval.csv"),
                         output_dir=str(tmp_path / "run"), max_length=32, epochs=1, precision="fp32",
                         calibration="none", baseline="none", examples=["Fine."])  # fmt: skip
    messages = []
    result = train(config, log=messages.append)
    assert result.space.calibration is None and "calibration" not in json.loads(
        (result.output_dir / "labels.json").read_text()
    )
    assert any(m.startswith("Calibration: none (--calibration none)") for m in messages)
    assert not (result.output_dir / "reliability.png").exists()
