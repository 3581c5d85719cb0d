"""The last layer on the first token only: the same logits and gradients as the full layer, for less work."""

import copy

import pytest
import torch
import transformers as hf

from lora_sentiment.modeling.first_token import LAST_LAYERS, read_every_token, read_first_token_only
from lora_sentiment.modeling.model import add_lora, load_classifier_model, load_tokenizer

SMALL = {"vocab_size": 120, "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32,
         "intermediate_size": 37}  # fmt: skip
CONFIGS = {
    "bert": lambda: hf.BertConfig(**SMALL),
    "roberta": lambda: hf.RobertaConfig(**SMALL),
    "xlm-roberta": lambda: hf.XLMRobertaConfig(**SMALL),
    "camembert": lambda: hf.CamembertConfig(**SMALL),
    "electra": lambda: hf.ElectraConfig(**SMALL, embedding_size=16),
    "distilbert": lambda: hf.DistilBertConfig(vocab_size=120, n_layers=2, n_heads=4, dim=32, hidden_dim=37),
}


def _model(model_type: str, attention: str, dropout: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(0)
    config = CONFIGS[model_type]()
    config.num_labels = 3
    return hf.AutoModelForSequenceClassification.from_config(config, attn_implementation=attention)


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 120, (3, 11), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _last_feed_forward_inputs(model: torch.nn.Module) -> list[tuple[int, ...]]:
    """The shapes the last layer's feed-forward output projection is given, as the model runs."""
    path = LAST_LAYERS[model.config.model_type][0]
    layer = model.base_model.get_submodule(path)[-1]
    linear = layer.ffn.lin2 if hasattr(layer, "ffn") else layer.output.dense
    shapes: list[tuple[int, ...]] = []
    linear.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    return shapes


def test_every_architecture_it_covers_is_tested():
    assert set(CONFIGS) == set(LAST_LAYERS)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_the_logits_are_the_full_layers_from_one_position(model_type, attention):
    full = _model(model_type, attention).eval()
    first = copy.deepcopy(full)
    assert read_first_token_only(first)
    shapes = _last_feed_forward_inputs(first)
    batch = _batch()
    with torch.no_grad():
        for mask in (batch["attention_mask"], None):  # padded, and no mask at all
            expected = full(input_ids=batch["input_ids"], attention_mask=mask).logits
            torch.testing.assert_close(first(input_ids=batch["input_ids"], attention_mask=mask).logits, expected)
    assert shapes and all(shape[:2] == (3, 1) for shape in shapes)  # one position, not 11


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_training_gets_the_same_gradients_through_lora(model_type):
    def gradients(first_token: bool) -> dict[str, torch.Tensor]:
        model = _model(model_type, "sdpa")
        for module in model.modules():  # dropout off, so both passes draw nothing
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if first_token:
            read_first_token_only(model)
        targets = ["q_lin"] if model_type == "distilbert" else ["query"]
        model = add_lora(model, r=4, alpha=8, dropout=0.0, targets=targets)
        with torch.no_grad():  # LoRA's B starts at zero: move it, so its A gets a gradient too
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(generator=torch.Generator().manual_seed(len(name)))
        model.train()
        loss = model(**_batch(), labels=torch.tensor([0, 2, 1])).loss
        loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    full, first = gradients(False), gradients(True)
    assert full.keys() == first.keys() and any("lora_A" in n for n in full)
    for name in full:
        torch.testing.assert_close(first[name], full[name], msg=name)


def test_loaded_classifiers_read_the_first_token_only_and_can_read_every_token_again(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    model = load_classifier_model(tiny_bert, ["neg", "pos"], tokenizer=tokenizer).eval()
    shapes = _last_feed_forward_inputs(model)
    batch = tokenizer(["a short one", "a much longer text than the first"], padding=True, return_tensors="pt")
    with torch.no_grad():
        first = model(**batch).logits
        read_every_token(model)
        every = model(**batch).logits
    torch.testing.assert_close(first, every)
    assert shapes[0][1] == 1 and shapes[1][1] == batch["input_ids"].shape[1]
    wrapped = add_lora(model, r=4, alpha=8, dropout=0.0, targets=["query"])  # under peft: the same layer
    assert read_first_token_only(wrapped)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(**batch).logits, every)
    assert shapes[-1][1] == 1
    read_every_token(wrapped)
    with torch.no_grad():
        wrapped(**batch)
    assert shapes[-1][1] == batch["input_ids"].shape[1]


def test_architectures_whose_heads_read_more_keep_their_layers():
    gpt2 = hf.AutoModelForSequenceClassification.from_config(
        hf.GPT2Config(vocab_size=50, n_layer=1, n_head=2, n_embd=16, num_labels=2)
    )  # fmt: skip
    assert not read_first_token_only(gpt2)  # its head reads the last real token
    chunked = _model("bert", "sdpa")
    chunked.config.chunk_size_feed_forward = 4
    assert not read_first_token_only(chunked)
    flex = _model("bert", "sdpa")
    flex.config._attn_implementation = "flex_attention"
    assert not read_first_token_only(flex)
    assert "forward" not in chunked.bert.encoder.layer[-1].__dict__
    other = _model("distilbert", "sdpa")  # a layer built otherwise (another transformers version, a model's code)
    del other.distilbert.transformer.layer[-1].ffn
    assert not read_first_token_only(other)
