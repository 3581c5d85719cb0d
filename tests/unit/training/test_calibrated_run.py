"""A run calibrates its outputs after training (problems/calibration.py) where that helps out of sample, records it
where every path reads it, and shows it in its card and report; every engine applies what a run records;
--calibration none keeps the model's own outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lora_sentiment import TrainConfig, load_classifier, open_predictor, train
from lora_sentiment.cli import main
from lora_sentiment.runs.run import Run

TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "It was fine, I suppose."]


def test_the_shared_run_records_its_calibration_and_applies_it_only_where_it_helped(trained_run, capsys):
    run = Run.open(trained_run)
    report = run.metrics.final["calibration"]
    assert report["method"] == "temperature" and report["fitted_on"] == 60 and "cross-fitted" in report["checked_by"]
    assert report["applied"] == (report["after"]["nll"] < report["before"]["nll"])
    assert (run.space.calibration is not None) == report["applied"]
    assert ("calibration" in json.loads((trained_run / "labels.json").read_text())) == report["applied"]
    assert len(report["after"]["reliability"]) >= 2 and (trained_run / "reliability.png").stat().st_size > 5000
    card = (trained_run / "README.md").read_text()
    shown = "Calibration: temperature" if report["applied"] else "Calibration: not applied;"
    assert shown in card and "cross-fitted" in card
    assert main(["report", str(trained_run), "--no-plots"]) == 0
    assert shown in capsys.readouterr().out


@pytest.mark.slow  # exports to every engine
def test_a_recorded_temperature_is_applied_by_every_engine(tmp_path, calibrated_run, trained_run):
    raw = load_classifier(trained_run, precision="fp32", engine="torch").predict_scores(TEXTS)
    # The shared run's own temperature taken back out: whether its calibration was kept depends on the float
    # rounding of the machine that trained it (CI's kept one of about 0.05 where ours kept none), and T=2 replaces it.
    recorded = json.loads((trained_run / "labels.json").read_text()).get("calibration") or {"temperatures": [1.0]}
    softened = np.exp(np.log(raw) * recorded["temperatures"][0] / 2.0)
    softened /= softened.sum(axis=1, keepdims=True)
    calibrated = load_classifier(calibrated_run, precision="fp32", engine="torch")
    assert np.allclose(calibrated.predict_scores(TEXTS), softened, atol=1e-6)
    assert (softened.argmax(1) == raw.argmax(1)).all()

    from transformers import pipeline

    from lora_sentiment.export.writing import export_run

    # Exports carry the temperature in their output layer: plain runtimes give calibrated outputs, ours too.
    merged = export_run(calibrated_run, tmp_path / "merged", log=lambda _: None)
    recorded = json.loads((merged / "labels.json").read_text())["calibration"]
    assert recorded == {"method": "temperature", "fitted_on": 60, "temperatures": [2.0], "in_weights": True}
    plain = pipeline("text-classification", model=str(merged), top_k=None)(TEXTS)
    given = np.array([[{d["label"]: d["score"] for d in row}[n] for n in ("Negative", "Positive")] for row in plain])
    assert np.allclose(given, softened, atol=1e-5)
    for engine in ("onnx", "openvino"):
        export = export_run(calibrated_run, tmp_path / engine, format=engine, log=lambda _: None)
        assert np.allclose(open_predictor(export).predict_scores(TEXTS), softened, atol=2e-3), engine
        assert np.allclose(load_classifier(calibrated_run, engine=engine).predict_scores(TEXTS), softened, atol=2e-3)
    from lora_sentiment.inference.shared_base import load_classifiers

    member = load_classifiers({"c": str(calibrated_run)}, precision="fp32")["c"]
    assert np.allclose(member.predict_scores(TEXTS), softened, atol=1e-5)


def test_calibration_none_keeps_the_raw_outputs(tmp_path, tiny_distilbert, small_csv, imdb_frames):
    imdb_frames[1].groupby("label").head(30)[["text", "label"]].to_csv(tmp_path / "eval.csv", index=False)
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), eval_data=str(tmp_path / "eval.csv"),
                         output_dir=str(tmp_path / "run"), max_length=32, epochs=1, precision="fp32",
                         calibration="none", baseline="none", examples=["Fine."])  # fmt: skip
    messages = []
    result = train(config, log=messages.append)
    assert result.space.calibration is None
    assert "calibration" not in json.loads((result.output_dir / "labels.json").read_text())
    assert "calibration" not in result.metrics.final.model_dump()
    assert any(m.startswith("Calibration: none (--calibration none)") for m in messages)
    assert not (result.output_dir / "reliability.png").exists()
