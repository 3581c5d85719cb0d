"""--long-text chunks: every token read in overlapping windows, logits averaged per text."""

import numpy as np
import pytest

from lora_sentiment.data.encoding import TextEncoder
from lora_sentiment.errors import UserError
from lora_sentiment.inference.classifier import Reading, predict_logits


def test_windows_cover_every_token_with_the_overlap(wordpiece):
    encoder = TextEncoder(wordpiece, max_length=16, truncation="head+tail", head_tokens=4)
    text = " ".join(f"w{i}" for i in range(40))
    tokens = wordpiece(text, add_special_tokens=False)["input_ids"]
    encoded, owners = encoder.windows([text, "short one"], stride=4)
    windows = [ids[1:-1] for ids in encoded["input_ids"]]  # without [CLS] / [SEP]
    assert all(len(ids) <= 16 for ids in encoded["input_ids"]) and owners.count(1) == 1
    first = [w for w, o in zip(windows, owners) if o == 0]
    assert first[0] == tokens[:14] and first[1][:4] == tokens[10:14]  # consecutive windows share 4 tokens
    assert sorted({t for w in first for t in w}) == sorted(set(tokens)) and first[-1][-1] == tokens[-1]
    with pytest.raises(UserError, match="--stride"):
        encoder.windows([text], stride=14)


def test_chunks_pool_the_window_logits(trained_classifier):
    model, encoder = trained_classifier.model, trained_classifier.encoder
    short, long = "A fine film.", " ".join(["a wonderful film with a moving story"] * 40)
    assert np.allclose(
        predict_logits(model, encoder, [short], Reading(long_text="chunks")),
        predict_logits(model, encoder, [short]),
        atol=1e-5,
    )
    encoded, owners = encoder.windows([long])
    assert len(owners) > 1
    per_window = np.stack([predict_logits(model, _Fixed(encoder, ids), ["x"])[0] for ids in encoded["input_ids"]])
    pooled = predict_logits(model, encoder, [short, long], Reading(long_text="chunks"))
    assert np.allclose(pooled[1], per_window.mean(axis=0), atol=1e-4)


class _Fixed:
    """An encoder that returns one fixed window, to score windows one at a time."""

    def __init__(self, encoder, ids):
        self.tokenizer, self.ids = encoder.tokenizer, ids

    def __call__(self, texts):
        return {"input_ids": [self.ids], "attention_mask": [[1] * len(self.ids)]}

    def encode(self, texts, long_text="truncate", stride=None):
        return self(texts), [0]
