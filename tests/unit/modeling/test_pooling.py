"""--pooling mean: the last layer's query starts at zero, so the first token's final state starts as an even
average over the text; the query is saved beside the head and kept out of LoRA."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from lora_sentiment.errors import UserError
from lora_sentiment.modeling.first_token import read_every_token
from lora_sentiment.modeling.model import add_lora, ensure_pad_token, load_classifier_model, load_tokenizer
from lora_sentiment.modeling.pooling import last_query_path, resolve_pooling, start_pooling


def _load(path, attention=None):
    tokenizer = load_tokenizer(path)
    ensure_pad_token(tokenizer)
    return tokenizer, load_classifier_model(path, ["no", "yes"], tokenizer=tokenizer, attention=attention)


@pytest.mark.parametrize(
    "fixture, expected, query",
    [
        ("tiny_bert", "mean", "bert.encoder.layer.1.attention.self.query"),
        ("tiny_distilbert", "mean", "distilbert.transformer.layer.1.attention.q_lin"),
        ("tiny_roberta", "mean", "roberta.encoder.layer.1.attention.self.query"),
        ("tiny_gpt2_no_pad", "first-token", None),
    ],
)
def test_auto_picks_mean_where_the_head_reads_the_first_token(request, fixture, expected, query):
    _, model = _load(request.getfixturevalue(fixture))
    assert resolve_pooling("auto", model) == expected
    assert resolve_pooling("first-token", model) == "first-token"
    if query is None:
        with pytest.raises(UserError, match="--pooling first-token"):
            resolve_pooling("mean", model)
    else:
        assert last_query_path(model) == query


def test_the_first_token_attends_evenly_to_the_text_and_never_to_padding(tiny_bert):
    tokenizer, model = _load(tiny_bert, attention="eager")
    read_every_token(model)  # the last layer's attention for every token, to read its rows
    assert start_pooling(model, "first-token") == []
    assert start_pooling(model, "mean") == ["bert.encoder.layer.1.attention.self.query"]
    batch = tokenizer(["a short one", "a much longer text than the first one in this batch"], padding=True,
                      return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        attentions = model.eval()(**batch, output_attentions=True).attentions
    last = attentions[-1][:, :, 0, :]  # every head, the first token's row
    for row, mask in enumerate(batch["attention_mask"]):
        n = int(mask.sum())
        expected = torch.cat([torch.full((n,), 1.0 / n), torch.zeros(len(mask) - n)])
        torch.testing.assert_close(last[row], expected.expand_as(last[row]))
    # the layers below keep their own attention
    assert not torch.allclose(attentions[0][0, :, 0, :5], torch.full((5,), 0.2).expand(attentions[0].shape[1], 5))


def test_the_query_is_trained_in_full_saved_and_reloads_with_plain_peft(tiny_bert, tmp_path):
    from peft import PeftModel

    tokenizer, model = _load(tiny_bert)
    full = start_pooling(model, "mean")
    peft_model = add_lora(model, r=4, alpha=8, dropout=0.0, targets=["query", "value"], full=full)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("layer.1.attention.self.query.modules_to_save" in n for n in trainable)
    assert not any("layer.1.attention.self.query.lora_" in n for n in trainable)
    assert any("layer.0.attention.self.query.lora_A" in n for n in trainable)
    with torch.no_grad():  # as training would leave it: the query moved off zero
        peft_model.base_model.model.bert.encoder.layer[1].attention.self.query.modules_to_save.default.weight += 0.1
    peft_model.save_pretrained(tmp_path)
    batch = tokenizer(["a film", "another film, longer"], padding=True, return_tensors="pt")
    reloaded = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2),
                                         tmp_path).eval()  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, peft_model.eval()(**batch).logits)
