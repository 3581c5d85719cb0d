"""prediction.py: probabilities in input order whatever the batching, and a Classifier from a run."""

import numpy as np
import pytest
import torch

from lora_sentiment.inference.classifier import Classifier, Reading, predict_logits
from lora_sentiment.problems.outputs import Prediction
from lora_sentiment.runs.run import Run

TEXTS = [
    "Short.",
    "A much longer review that goes on and on about the plot, the acting and the music.",
    "Mid length text.",
]


def test_batches_sorted_by_length_give_each_text_its_own_logits(trained_classifier):
    model, encoder = trained_classifier.model, trained_classifier.encoder
    together = predict_logits(model, encoder, TEXTS, Reading(batch_size=2))
    alone = np.concatenate([predict_logits(model, encoder, [t], Reading(batch_size=1)) for t in TEXTS])
    assert together.shape == (3, 2) and np.allclose(together, alone, atol=1e-4)
    assert np.allclose(trained_classifier.predict_proba(TEXTS).sum(axis=1), 1, atol=1e-5)
    assert predict_logits(model, encoder, []).shape == (0, 2)


def test_classifier_from_an_opened_run_predicts_records(trained_run, trained_classifier):
    classifier = Classifier.from_run(Run.open(trained_run), precision="fp32")
    made = classifier.predict(TEXTS)
    assert all(isinstance(p, Prediction) for p in made) and [p.text for p in made] == TEXTS
    assert np.allclose([p.probability for p in made], trained_classifier.predict_proba(TEXTS).max(axis=1), atol=1e-6)
    assert classifier.label_names == ["Negative", "Positive"] and classifier.precision == "fp32"


def test_evaluate_takes_label_names_or_ids(tmp_path, trained_classifier, small_csv):
    import pandas as pd

    rows = pd.read_csv(small_csv).head(30)
    rows.assign(label=rows.label.map({0: "negative", 1: "Positive"})).to_csv(tmp_path / "named.csv", index=False)
    by_id = trained_classifier.evaluate(str(small_csv), max_samples=30)
    by_name = trained_classifier.evaluate(str(tmp_path / "named.csv"))
    assert by_id["samples"] == by_name["samples"] == 30
    assert set(by_id) >= {"accuracy", "f1", "roc_auc", "confusion_matrix", "dropped_empty"}


@pytest.mark.parametrize("side, multiple", [("right", None), ("right", 16), ("left", 8)])
def test_padded_batches_equal_the_tokenizers_own_padding(trained_classifier, side, multiple):
    from lora_sentiment.data.encoding import padded_batch

    tokenizer = trained_classifier.encoder.tokenizer
    encoded = dict(tokenizer(["short", "a somewhat longer text here", "mid length text"], return_token_type_ids=True))
    index = np.array([1, 2, 0])
    previous, tokenizer.padding_side = tokenizer.padding_side, side
    try:
        features = [{k: encoded[k][i] for k in encoded} for i in index]
        expected = tokenizer.pad(features, pad_to_multiple_of=multiple, return_tensors="pt")
        got = padded_batch(encoded, index, tokenizer.pad_token_id, side == "left", multiple)
    finally:
        tokenizer.padding_side = previous
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(torch.from_numpy(got[key]), expected[key]), key


def test_texts_in_several_tokenizing_blocks_give_the_same_logits(trained_classifier, imdb_frames):
    """The GPU path tokenizes block k+1 in a thread while block k runs: same logits, same order."""
    model, encoder = trained_classifier.model, trained_classifier.encoder
    texts = imdb_frames[1]["text"].head(37).tolist()
    whole = predict_logits(model, encoder, texts, Reading(batch_size=8))
    for long_text in ("truncate", "chunks"):
        expected = predict_logits(model, encoder, texts, Reading(batch_size=8, long_text=long_text))
        blocks = predict_logits(model, encoder, texts, Reading(batch_size=8, long_text=long_text), tokenize_block=10)
        np.testing.assert_allclose(blocks, expected, atol=1e-5)
    assert whole.shape == (37, 2)
