import numpy as np
import pytest
import torch

from lora_sentiment.errors import UserError
from lora_sentiment.modeling.device import resolve_precision
from lora_sentiment.modeling.model import (
    add_lora,
    count_parameters,
    ensure_pad_token,
    load_classifier_model,
    load_tokenizer,
    model_max_length,
)
from lora_sentiment.modeling.targets import head_modules, resolve_lora_targets
from lora_sentiment.problems.metrics import classification_metrics

LABELS = ["Negative", "Positive"]


def _load(path, labels=LABELS):
    tokenizer = load_tokenizer(path)
    added = ensure_pad_token(tokenizer)
    return tokenizer, load_classifier_model(path, labels, tokenizer=tokenizer), added


def _trainable_module_names(peft_model) -> set[str]:
    return {name for name, p in peft_model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "fixture, targets, head",
    [
        ("tiny_distilbert", ["q_lin", "v_lin"], ["pre_classifier", "classifier"]),
        ("tiny_bert", ["query", "value"], ["pooler", "classifier"]),
        ("tiny_roberta", ["query", "value"], ["classifier"]),
    ],
)
def test_default_targets_and_a_fully_trained_head(request, fixture, targets, head):
    _, model, added = _load(request.getfixturevalue(fixture))
    assert not added
    assert resolve_lora_targets(model, None) == targets
    assert head_modules(model) == head
    peft_model = add_lora(model, r=4, alpha=16, dropout=0.0, targets=targets)
    trainable = _trainable_module_names(peft_model)
    layers = model.config.num_hidden_layers if hasattr(model.config, "num_hidden_layers") else model.config.n_layers
    for target in targets:
        assert sum(f".{target}.lora_A." in n for n in trainable) == layers
    for module in head:
        # every parameter of each head module is trained, not only the final linear layer
        head_params = [n for n, _ in peft_model.named_parameters() if f"{module}.modules_to_save" in n]
        assert head_params and all(n in trainable for n in head_params)
    frozen_base = [
        n
        for n, p in peft_model.named_parameters()
        if "lora_" not in n and "modules_to_save" not in n and p.requires_grad
    ]
    assert frozen_base == []


def test_tutorial_parameter_count_shape(tiny_distilbert):
    """r=4 on q_lin: trainable = LoRA (2 * r * dim per layer) + pre_classifier + classifier."""
    _, model, _ = _load(tiny_distilbert)
    dim, layers = model.config.dim, model.config.n_layers
    peft_model = add_lora(model, r=4, alpha=32, dropout=0.01, targets=["q_lin"])
    count = count_parameters(peft_model)
    expected = layers * 2 * 4 * dim + (dim * dim + dim) + (dim * 2 + 2)
    assert count.trainable == expected
    assert "trainable params" in str(count) and 0 < count.percent < 100


def test_unknown_architecture_and_targets_name_the_linear_layers(tiny_gpt2_no_pad, tiny_distilbert):
    _, gpt2, _ = _load(tiny_gpt2_no_pad)
    with pytest.raises(UserError, match="no default LoRA targets.*c_attn"):
        resolve_lora_targets(gpt2, None)
    _, distilbert, _ = _load(tiny_distilbert)
    with pytest.raises(UserError, match="--lora-targets query match no layer.*q_lin"):
        resolve_lora_targets(distilbert, ["query"])
    assert resolve_lora_targets(distilbert, ["all-linear"]) == ["all-linear"]
    peft_model = add_lora(distilbert, r=2, alpha=4, dropout=0.0, targets=["all-linear"])
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in peft_model.named_parameters() if "lora_A" in n}
    assert {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"} <= adapted


def test_a_target_path_adapts_only_the_layers_it_names(tiny_distilbert):
    """peft adapts a layer whose full name ends in "." + a target, so a path picks single layers (e.g. the top
    ones, where the backward pass then stops); a path that ends in no layer is refused, with an example."""
    _, distilbert, _ = _load(tiny_distilbert)
    last = distilbert.config.n_layers - 1
    top = [f"layer.{last}.attention.q_lin", f"transformer.layer.{last}.attention.v_lin"]
    assert resolve_lora_targets(distilbert, top) == top
    with pytest.raises(
        UserError,
        match=rf"layer.9.attention.q_lin match no layer.*e\.g\. transformer\.layer\.{last}\.attention\.q_lin\)",
    ):
        resolve_lora_targets(distilbert, ["layer.9.attention.q_lin"])
    peft_model = add_lora(distilbert, r=2, alpha=4, dropout=0.0, targets=top)
    adapted = sorted(n.split(".lora_A")[0] for n, _ in peft_model.named_parameters() if "lora_A" in n)
    assert [a.split("distilbert.", 1)[1] for a in adapted] == [f"transformer.{t}" for t in top[:1]] + top[1:]


def test_pad_token_is_added_and_embeddings_resized(tiny_gpt2_no_pad):
    tokenizer, model, added = _load(tiny_gpt2_no_pad)
    assert added and tokenizer.pad_token == "[PAD]"
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    # the resize is deterministic, so a reload re-creates the same embedding row
    tokenizer2, model2, _ = _load(tiny_gpt2_no_pad)
    assert torch.equal(model.get_input_embeddings().weight, model2.get_input_embeddings().weight)
    batch = tokenizer(["a short one", "a much longer review than the first"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 2)


def test_model_max_length(tiny_distilbert, tiny_roberta):
    for path, expected in ((tiny_distilbert, 128), (tiny_roberta, 126)):
        tokenizer, model, _ = _load(path)
        assert model_max_length(model.config, tokenizer) == expected


def test_precision_choice():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) in {"bf16", "fp32"}
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cpu)


def test_unloadable_local_model_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="--model"):
        load_tokenizer(str(tmp_path))


def test_metrics_binary_and_multiclass():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(labels, probs)
    assert m["accuracy"] == 0.75 and m["precision"] == pytest.approx(2 / 3) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(0.8) and m["roc_auc"] == 1.0
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    three = classification_metrics(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 1]])
    assert three["accuracy"] == 0.75 and "roc_auc" not in three
    assert three["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_base_dropout_keeps_the_head_dropout():
    from transformers import AutoConfig

    from lora_sentiment.modeling.model import base_dropout_overrides

    bert = base_dropout_overrides(AutoConfig.for_model("bert"), 0.0)
    assert bert == {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.1}
    distilbert = base_dropout_overrides(AutoConfig.for_model("distilbert"), 0.0)
    assert distilbert == {"dropout": 0.0, "attention_dropout": 0.0}  # seq_classif_dropout stays 0.2
    gpt2 = base_dropout_overrides(AutoConfig.for_model("gpt2"), 0.05)
    assert gpt2 == {"resid_pdrop": 0.05, "embd_pdrop": 0.05, "attn_pdrop": 0.05}


def test_base_dropout_reaches_the_model(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    off = load_classifier_model(tiny_bert, LABELS, tokenizer=tokenizer, base_dropout=0.0)
    kept = load_classifier_model(tiny_bert, LABELS, tokenizer=tokenizer, base_dropout=None)
    assert off.config.attention_probs_dropout_prob == 0.0 and off.config.hidden_dropout_prob == 0.0
    assert kept.config.attention_probs_dropout_prob == 0.1
    assert off.dropout.p == kept.dropout.p == 0.1  # the head's dropout is untouched


def test_attention_choice(tiny_bert, minilm_path):
    from transformers import AutoConfig

    from lora_sentiment.modeling.device import resolve_attention

    cpu, minilm = torch.device("cpu"), AutoConfig.from_pretrained(minilm_path)
    assert resolve_attention("auto", minilm, cpu, 256, "bf16") == "eager"  # 384 / 12 = 32-dim heads
    assert resolve_attention("auto", minilm, cpu, 256, "fp32") == "sdpa"  # fp32: SDPA's backward is the faster
    assert resolve_attention("auto", minilm, cpu, 512) == "sdpa"
    assert resolve_attention("auto", AutoConfig.for_model("distilbert"), cpu) == "sdpa"  # 64-dim heads
    assert resolve_attention("auto", AutoConfig.from_pretrained(minilm_path), torch.device("cuda")) == "sdpa"
    assert resolve_attention("sdpa", AutoConfig.from_pretrained(minilm_path), cpu) == "sdpa"
    tokenizer = load_tokenizer(tiny_bert)
    model = load_classifier_model(tiny_bert, LABELS, tokenizer=tokenizer, attention="eager")
    assert model.config._attn_implementation == "eager"
    for precision, expected in (("bf16", "eager"), ("fp32", "sdpa")):  # tiny_bert: 16-dim heads
        model = load_classifier_model(tiny_bert, LABELS, tokenizer=tokenizer, attention="auto", max_length=64,
                                      precision=precision)  # fmt: skip
        assert model.config._attn_implementation == expected
