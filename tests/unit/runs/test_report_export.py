"""Plots, `report`, TensorBoard logging, and the merged export that plain transformers loads."""

import json
import shutil

import numpy as np
import pytest

from lora_sentiment.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_training_draws_plots_and_report_redraws_them(tmp_path, trained_run, capsys):
    assert _is_png(trained_run / "learning_curves.png") and _is_png(trained_run / "confusion_matrix.png")
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    for name in ("learning_curves.png", "confusion_matrix.png"):
        (run / name).unlink()
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert _is_png(run / "learning_curves.png") and _is_png(run / "confusion_matrix.png")
    metrics = json.loads((run / "metrics.json").read_text())
    final = metrics["final"]
    assert f"Kept epoch {final['epoch']:g}: accuracy {final['accuracy']:.4f}" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("1 ", "2 "))]) == 2  # one row per epoch
    assert "Confusion (rows true, columns predicted):" in out and "A wonderful, moving film." in out
    assert len(out.splitlines()) < 40  # one screen


def test_skewed_evaluation_texts_lead_with_macro_f1_in_the_report_and_card(tmp_path, trained_run, capsys):
    from lora_sentiment.runs import card
    from lora_sentiment.runs.run import Run

    run = shutil.copytree(trained_run, tmp_path / "skewed")
    record = json.loads((run / "metrics.json").read_text())
    record["final"]["confusion_matrix"] = [[1, 1], [0, 38]]  # the baseline's record (older runs) has none
    (run / "metrics.json").write_text(json.dumps(record))
    assert main(["report", str(run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "f1_macro  accuracy" in out and "Kept epoch" in out
    assert [line for line in out.splitlines() if line.startswith("Baseline (TF-IDF + linear): f1_macro ")]
    opened = Run.open(run)
    headline = opened.space.problem.headline_of(opened.metrics.final)
    assert "metrics:\n- f1_macro\n- accuracy\n" in card._front_matter(opened.config, opened.space, headline)
    results = card._results(opened.config, opened.space, opened.metrics, {})
    assert "| epoch | train loss | eval loss | f1_macro | accuracy |" in results
    assert f"f1_macro **{record['final']['f1_macro']:.4f}**" in results
    assert f"logistic regression (fitted in {record['baseline']['seconds']:.1f} s): f1_macro" in results


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


def test_tensorboard_logging(tmp_path, tiny_distilbert, small_csv):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lora_sentiment import TrainConfig, train

    config = TrainConfig(
        model=tiny_distilbert,
        data=str(small_csv),
        output_dir=str(tmp_path / "tb"),
        max_length=32,
        epochs=2,
        batch_size=16,
        report_to="tensorboard",
    )
    result = train(config, log=lambda _: None)
    events = EventAccumulator(str(result.output_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "eval/loss", "eval/accuracy"} <= set(tags)
    assert [e.step for e in events.Scalars("eval/accuracy")] == [row["step"] for row in result.metrics["history"]]


def test_merged_export_loads_in_a_plain_pipeline_and_agrees(tmp_path, trained_run, trained_classifier, capsys):
    from transformers import pipeline

    out = tmp_path / "merged"
    assert main(["export", str(trained_run), str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert not any(n.startswith("adapter") for n in names)  # standalone: no peft files
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "Negative", "1": "Positive"}

    texts = [
        "A wonderful, moving film.",
        "Dull and far too long.",
        "It was fine, I suppose, but the ending dragged on.",
    ]
    classify = pipeline("text-classification", model=str(out), device="cpu", top_k=None)
    got = classify(texts)
    expected = trained_classifier.predict_proba(texts)
    for row, probabilities in zip(got, expected):
        scores = {item["label"]: item["score"] for item in row}
        assert [scores["Negative"], scores["Positive"]] == pytest.approx(probabilities.tolist(), abs=1e-5)
    top = [max(row, key=lambda item: item["score"])["label"] for row in got]
    assert top == [["Negative", "Positive"][i] for i in np.argmax(expected, axis=1)]

    assert main(["export", str(trained_run), str(out)]) == 2  # never overwritten silently
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(trained_run), str(out), "--overwrite"]) == 0
