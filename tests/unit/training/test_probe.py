"""LP-FT's head start: after it, the classifier (its real forward pass) predicts exactly what a linear model
fitted on the frozen encoder's features predicts — single-label, multi-label and regression, with a hidden head
layer (DistilBERT's pre_classifier, BERT's pooler) kept as the model built it."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from lora_sentiment.config import TrainConfig
from lora_sentiment.data.encoding import TextEncoder
from lora_sentiment.modeling.model import load_classifier_model, load_tokenizer, output_layer
from lora_sentiment.problems.probe import PROBE_C, standardised
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training.probe import head_features, start_head_at_probe

TEXTS = [f"{word} film, {extra}" for word in ("great", "awful", "fine", "dull", "moving", "boring", "superb", "bad")
         for extra in ("truly.", "I think so.", "the end.")]  # fmt: skip


def _model(path, space):
    tokenizer = load_tokenizer(path)
    model = load_classifier_model(path, space, tokenizer=tokenizer)
    return model, TextEncoder.for_config(tokenizer, TrainConfig(model=path, max_length=16))


def _logits(model, encoder):
    model.eval()
    batch = encoder.tokenizer(TEXTS, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.double().numpy()


@pytest.mark.parametrize("fixture", ["tiny_distilbert", "tiny_bert"])
def test_single_label_head_starts_at_the_probe(fixture, request):
    space = LabelSpace("single-label", ["Negative", "Positive"])
    model, encoder = _model(request.getfixturevalue(fixture), space)
    labels = np.array([(i // 3 + 1) % 2 for i in range(len(TEXTS))])  # great, fine, moving, superb: 1
    features = head_features(model, encoder, TEXTS, "fp32")
    random_start = space.problem.scores(_logits(model, encoder))
    assert start_head_at_probe(model, encoder, (TEXTS, labels), space.problem, "fp32", seed=0) == len(TEXTS)
    scaled, _, _ = standardised(features)
    probe = LogisticRegression(C=PROBE_C, max_iter=2000).fit(scaled, labels)
    probabilities = space.problem.scores(_logits(model, encoder))
    # 3e-4: with --pooling mean the features pass one more attention average (measured 1.0e-4 off on tiny BERT)
    np.testing.assert_allclose(probabilities, probe.predict_proba(scaled), atol=3e-4)
    # Not the random start: it scores its training texts as the probe does (a tiny random encoder's features do
    # not always separate them all, so no accuracy is asserted).
    assert np.abs(probabilities - random_start).max() > 0.05
    assert (probabilities.argmax(1) == labels).mean() == probe.score(scaled, labels)


def test_multi_label_head_starts_at_a_probe_per_tag_and_a_constant_tag_at_its_rate(tiny_bert):
    space = LabelSpace("multi-label", ["a", "b", "never"])
    model, encoder = _model(tiny_bert, space)
    rng = np.random.default_rng(0)
    labels = np.stack([np.arange(len(TEXTS)) % 2, rng.integers(0, 2, len(TEXTS)), np.zeros(len(TEXTS))], 1)
    features = head_features(model, encoder, TEXTS, "fp32")
    start_head_at_probe(model, encoder, (TEXTS, labels.astype(np.float32)), space.problem, "fp32", seed=0)
    scaled, _, _ = standardised(features)
    probabilities = space.problem.scores(_logits(model, encoder))
    for tag in (0, 1):
        expected = LogisticRegression(C=PROBE_C, max_iter=2000).fit(scaled, labels[:, tag]).predict_proba(scaled)[:, 1]
        # 3e-4 as for single-label: the features pass one more attention average (1.08e-4 off on an amx CPU in CI)
        np.testing.assert_allclose(probabilities[:, tag], expected, atol=3e-4)
    assert probabilities[:, 2].max() < 1e-3  # never on in training: starts at its (clipped) rate


def test_regression_head_starts_at_ridge(tiny_distilbert):
    space = LabelSpace("regression", ["rating"])
    model, encoder = _model(tiny_distilbert, space)
    labels = np.linspace(1, 10, len(TEXTS))
    features = head_features(model, encoder, TEXTS, "fp32")
    start_head_at_probe(model, encoder, (TEXTS, labels), space.problem, "fp32", seed=0)
    scaled, _, _ = standardised(features)
    expected = Ridge(alpha=1.0).fit(scaled, labels).predict(scaled)
    # A random tiny model's features hardly vary between texts (by about 1e-4), so the probe's raw weights reach 1e4
    # and each output is a difference of terms summing to thousands, which fp32 keeps to about 1e-7 of that sum
    # (1.26e-3 off at a sum of 6,000, with the summation order of an xdist worker).
    weight = output_layer(model, 1).weight.detach().double().numpy()[0]
    summed = np.abs(features * weight).sum(axis=1).max()
    np.testing.assert_allclose(_logits(model, encoder)[:, 0], expected, atol=1e-3 + 1e-6 * summed)


def test_the_probe_reads_a_seeded_sample_of_a_large_split(tiny_bert, monkeypatch):
    from lora_sentiment.training import probe

    monkeypatch.setattr(probe, "PROBE_TEXTS", 10)
    space = LabelSpace("single-label", ["Negative", "Positive"])
    model, encoder = _model(tiny_bert, space)
    labels = np.array([i % 2 for i in range(len(TEXTS))])
    assert start_head_at_probe(model, encoder, (TEXTS, labels), space.problem, "fp32", seed=0) == 10


def test_a_decoder_head_without_bias_that_scores_every_token_starts_at_the_probe_of_its_last_token(tiny_gpt2_no_pad):
    from lora_sentiment.modeling.model import ensure_pad_token

    space = LabelSpace("single-label", ["Negative", "Positive"])
    tokenizer = load_tokenizer(tiny_gpt2_no_pad)
    ensure_pad_token(tokenizer)
    model = load_classifier_model(tiny_gpt2_no_pad, space, tokenizer=tokenizer)
    encoder = TextEncoder.for_config(tokenizer, TrainConfig(model=tiny_gpt2_no_pad, max_length=16))
    labels = np.array([(i // 3 + 1) % 2 for i in range(len(TEXTS))])
    features = head_features(model, encoder, TEXTS, "fp32")
    assert features.shape == (len(TEXTS), model.config.n_embd)
    start_head_at_probe(model, encoder, (TEXTS, labels), space.problem, "fp32", seed=0)
    scaled, _, _ = standardised(features, centred=False)  # its score layer has no bias: neither has the probe
    probe = LogisticRegression(C=PROBE_C, max_iter=2000, fit_intercept=False).fit(scaled, labels)
    np.testing.assert_allclose(space.problem.scores(_logits(model, encoder)), probe.predict_proba(scaled), atol=1e-4)
