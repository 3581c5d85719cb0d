"""Explanations (inference/explain.py) on a tiny run: the words of the text as the run reads it, pieces merged
into words, signed scores scaled to 1, for the predicted label or a chosen one, by integrated gradients or
occlusion; through the Python API, predict (texts and files) and the server; refused in one line where no torch
model can give them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lora_sentiment import load_classifier
from lora_sentiment.cli import main
from lora_sentiment.inference.explain import _pieces


@pytest.fixture(scope="module")
def classifier(trained_run):
    return load_classifier(trained_run, precision="fp32", engine="torch")


def test_word_pieces_are_merged_back_into_the_words_the_run_read(classifier):
    pieces = _pieces(classifier.encoder, "Unbelievably<br />moving, wasn't it?")
    # BERT splits "wasn't" at its apostrophe (wasn / ' / t): joined again, as a person reads it
    assert pieces.words == ["Unbelievably", "moving", ",", "wasn't", "it", "?"]
    marks = _pieces(classifier.encoder, "It’s well-made!! Don't... (really)")
    assert marks.words == ["It’s", "well-made", "!!", "Don't", "...", "(", "really", ")"]
    assert len(set(marks.word_of[1:-1])) == len(marks.words)  # every joined word is read, none twice
    assert len(pieces.ids) > len(pieces.words) + 2  # "unbelievably" is several pieces, plus [CLS] and [SEP]
    assert pieces.word_of[0] is None and pieces.word_of[-1] is None and not pieces.truncated
    long = " ".join(f"w{i}" for i in range(400))  # over the run's 64 tokens: its head+tail cut
    cut = _pieces(classifier.encoder, long)
    assert cut.truncated and len(cut.ids) == 64 and cut.words[0] == "w0" and cut.words[-1] == "w399"


@pytest.mark.parametrize("method", ["integrated-gradients", "occlusion"])
def test_explanations_score_every_read_word_for_the_target(classifier, method):
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    made = classifier.explain(texts, method=method)
    for prediction in made:
        explanation = prediction.explanation
        assert explanation["target"] == prediction.label_name and explanation["method"] == method
        scores = np.array([w["score"] for w in explanation["words"]])
        assert [w["word"] for w in explanation["words"]][:2] in (["A", "wonderful"], ["Dull", "and"])
        assert np.abs(scores).max() == pytest.approx(1.0) and np.isfinite(scores).all()
    other = classifier.explain(texts[:1], method=method, label="Negative")[0].explanation
    assert other["target"] == "Negative"


def test_integrated_gradients_add_up_to_the_logit_difference(classifier):
    """IG's completeness: the scores (before scaling) sum to f(text) - f(baseline); checked through Captum."""
    import torch

    from lora_sentiment.inference.explain import _attribute

    pieces = _pieces(classifier.encoder, "A wonderful, moving film.")
    per_token = _attribute(classifier.model, pieces, 1, "integrated-gradients", 64)
    ids = torch.tensor([pieces.ids])
    baseline = torch.tensor([[i if w is None else classifier.model.config.pad_token_id or 0
                              for i, w in zip(pieces.ids, pieces.word_of)]])  # fmt: skip
    with torch.no_grad():
        difference = (classifier.model(input_ids=ids).logits - classifier.model(input_ids=baseline).logits)[0, 1]
    assert per_token.sum() == pytest.approx(float(difference), abs=0.05 * max(1.0, abs(float(difference))))


def test_explanations_through_files_the_cli_and_the_server(tmp_path, trained_run, small_csv, capsys):
    run = str(trained_run)
    assert main(["predict", run, "--text", "A wonderful film.", "--explain", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["explanation"]["words"][1]["word"] == "wonderful"

    out = tmp_path / "p.jsonl"
    rows = pd.read_csv(small_csv).head(6)
    rows.loc[2, "text"] = ""  # a row with no text gets no explanation
    rows.to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", run, "--input", str(tmp_path / "in.csv"), "--output", str(out), "--explain",
                 "--explain-method", "occlusion", "--no-progress"]) == 0  # fmt: skip
    frame = pd.read_json(out, lines=True)
    assert frame.explanation[2] is None and frame.explanation[0]["method"] == "occlusion"
    assert frame.explanation[0]["target"] == frame.predicted_label_name[0]

    from lora_sentiment.serving.app import create_app, run_info

    with TestClient(create_app(load_classifier(run, precision="fp32"), run_info=run_info(run))) as client:
        answer = client.post("/explain", json={"texts": ["Dull."], "label": "Positive"}).json()["predictions"][0]
        wrong = client.post("/explain", json={"texts": ["Dull."], "label": "Great"})
    assert answer["explanation"]["target"] == "Positive" and answer["explanation"]["words"][0]["word"] == "Dull"
    assert wrong.status_code == 422 and "Negative" in wrong.text  # the schema names the served labels


def test_where_explanations_cannot_come_from_is_one_line(tmp_path, trained_run, capsys):
    from lora_sentiment.export.writing import export_run

    export = export_run(trained_run, tmp_path / "onnx", format="onnx", log=lambda _: None)
    for argv, message in (
        (["predict", str(export), "--text", "x", "--explain"], "--explain takes one run folder"),
        (["predict", str(trained_run), "--text", "x", "--explain", "--explain-label", "Great"], "not a label of"),
        (["predict", str(trained_run), "--text", "x", "--explain", "--engine", "onnx"], "drop --engine onnx"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_a_slow_tokenizer_is_named_in_one_line(classifier):
    """Words come from a fast tokenizer's offsets: a run with a slow one is told how to get one."""
    from types import SimpleNamespace

    from lora_sentiment.errors import UserError
    from lora_sentiment.inference.explain import check_explainable

    slow = SimpleNamespace(model=classifier.model, space=classifier.space,
                           encoder=SimpleNamespace(tokenizer=SimpleNamespace(is_fast=False)))  # fmt: skip
    with pytest.raises(UserError, match="fast tokenizer"):
        check_explainable(slow, "integrated-gradients", None)
    check_explainable(classifier, "occlusion", "Positive")  # the run's own: fine


def test_a_blank_text_is_refused_before_any_explanation_is_computed(classifier, monkeypatch):
    monkeypatch.setattr("lora_sentiment.inference.explain.explain", lambda *a, **k: pytest.fail("explained"))
    with pytest.raises(ValueError, match=r"texts\[0\] is blank"):
        classifier.explain(["\t", "A fine film."])
