"""The last layer computes the first token's state only, where the head reads nothing else.

The classifiers of BERT, RoBERTa, DistilBERT, ELECTRA and their kin read the final state of the first token
([CLS], <s>): every other token's final state is computed and thrown away. In the last layer only the keys and
values need every token; the query, the attention's output projection and the feed-forward need the first token
alone. So the last layer runs on that one position, with the same modules and weights (LoRA's too), the same
attention function (eager or SDPA) and the same mask: the logits are those of the full layer up to float
rounding, for 14 % fewer of the encoder's multiply-adds in a 6-layer model at 256 tokens (MiniLM, DistilBERT: the
last layer keeps 2 of its 12 d² a token, and one query's attention), 7 % in a 12-layer one. Training's loss, the
linear probe, explanations and every export (the IR is traced from this forward) read the same logits.

Nothing is saved differently: the layer's forward is replaced on the loaded instance, so the adapter, the merged
model and its `save_pretrained` stay plain transformers; a model loaded elsewhere runs the full layer and gives
the same answers."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import torch

# Set by the encoder loop, not read by attention functions (they take the mask, dropout and scaling as arguments).
_LAYER_ONLY = ("cache", "encoder_hidden_states", "encoder_attention_mask", "past_key_values", "output_attentions")


def _first_token_attention(
    attention: Any, projections: tuple[Any, Any, Any], hidden: torch.Tensor, mask: Any, kwargs: dict[str, Any]
) -> torch.Tensor:
    """The attention context of the first position over all positions: (batch, 1, hidden)."""
    query, key, value = projections
    batch, size = hidden.shape[0], attention.attention_head_size

    def heads(states: torch.Tensor) -> torch.Tensor:
        return states.view(batch, states.shape[1], -1, size).transpose(1, 2)

    if isinstance(mask, torch.Tensor) and mask.dim() == 4:
        mask = mask[:, :, :1]  # the first query's row: (batch, 1, 1, length), as the full mask broadcasts it
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    eager = sys.modules[type(attention).__module__].eager_attention_forward  # the model's own
    function = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
    extra = {name: kwargs[name] for name in kwargs if name not in _LAYER_ONLY}
    context, _ = function(
        attention, heads(query(hidden[:, :1])), heads(key(hidden)), heads(value(hidden)), mask,
        dropout=attention.dropout.p if attention.training else 0.0, scaling=attention.scaling, **extra,
    )  # fmt: skip
    return context.reshape(batch, 1, -1).contiguous()


def _bert_layer(self: Any, hidden_states: torch.Tensor, attention_mask: Any = None, *_: Any, **kwargs: Any) -> Any:
    """BertLayer's forward (and RoBERTa's, ELECTRA's...: the same modules) for the first position only."""
    heads = self.attention.self
    context = _first_token_attention(heads, (heads.query, heads.key, heads.value), hidden_states, attention_mask,
                                     kwargs)  # fmt: skip
    attended = self.attention.output(context, hidden_states[:, :1])
    return self.feed_forward_chunk(attended)


def _distilbert_layer(self: Any, hidden_states: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> Any:
    heads = self.attention
    context = _first_token_attention(heads, (heads.q_lin, heads.k_lin, heads.v_lin), hidden_states, attention_mask,
                                     kwargs)  # fmt: skip
    attended = self.sa_layer_norm(heads.out_lin(context) + hidden_states[:, :1])
    return self.output_layer_norm(self.ffn(attended) + attended)


# model_type -> (the encoder's layer list inside the base model, the last layer's forward on the first position).
# Each of these heads reads position 0 of the last hidden state and nothing else.
LAST_LAYERS: dict[str, tuple[str, Callable[..., Any]]] = {
    "bert": ("encoder.layer", _bert_layer),
    "roberta": ("encoder.layer", _bert_layer),
    "xlm-roberta": ("encoder.layer", _bert_layer),
    "camembert": ("encoder.layer", _bert_layer),
    "electra": ("encoder.layer", _bert_layer),
    "distilbert": ("transformer.layer", _distilbert_layer),
}
# What each forward above uses of the layer (as transformers 5 builds it): a layer built otherwise (another
# transformers version, a model's own code) keeps its own forward rather than fail or answer differently.
_USES = {
    _bert_layer: ("feed_forward_chunk", "attention.output", "attention.self.query", "attention.self.key",
                  "attention.self.value", "attention.self.dropout"),
    _distilbert_layer: ("sa_layer_norm", "ffn", "output_layer_norm", "attention.q_lin", "attention.k_lin",
                        "attention.v_lin", "attention.out_lin", "attention.dropout"),
}  # fmt: skip


def _fits(layer: Any, forward: Callable[..., Any]) -> bool:
    if not all(_has(layer, path) for path in _USES[forward]):
        return False
    attention = layer.attention.self if forward is _bert_layer else layer.attention
    own = getattr(sys.modules[type(attention).__module__], "eager_attention_forward", None)
    return callable(own) and all(hasattr(attention, name) for name in ("attention_head_size", "scaling", "config"))


def _has(owner: Any, path: str) -> bool:
    for name in path.split("."):
        owner = getattr(owner, name, None)
        if owner is None:
            return False
    return True


def read_first_token_only(model: Any) -> bool:
    """Make the classifier's last layer compute the first position only, where its architecture and attention
    allow it; whether it did. On the model as loaded or under peft's wrapper (LoRA replaces modules inside the
    layer, which its forward looks up as it runs)."""
    config = getattr(model, "config", None)
    known = LAST_LAYERS.get(getattr(config, "model_type", ""))
    if known is None or getattr(config, "_attn_implementation", None) not in ("eager", "sdpa"):
        return False
    if getattr(config, "is_decoder", False) or getattr(config, "chunk_size_feed_forward", 0):
        return False
    path, forward = known
    layer = _last_layer(model, path)
    if not _fits(layer, forward):
        return False
    layer.forward = types.MethodType(forward, layer)
    return True


def _last_layer(model: Any, path: str) -> Any:
    plain = model.get_base_model() if hasattr(model, "get_base_model") else model  # under peft's wrapper
    return plain.base_model.get_submodule(path)[-1]


def read_every_token(model: Any) -> None:
    """Undo read_first_token_only: the last layer's own forward again, for callers that read every token's final
    state or the last layer's attention (`output_hidden_states`, `output_attentions`)."""
    known = LAST_LAYERS.get(getattr(getattr(model, "config", None), "model_type", ""))
    if known is not None:
        _last_layer(model, known[0]).__dict__.pop("forward", None)
