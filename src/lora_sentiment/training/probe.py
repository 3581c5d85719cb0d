"""The head starts where a linear probe ends (LP-FT, Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
Features"): the output layer is set to a linear model of the training targets fitted on what that layer sees
from the frozen encoder, before LoRA is added. Fine-tuning then starts from a head that already predicts, instead
of pushing gradients from a random head into the encoder for its first steps — which costs most with few labels.

Heads with a hidden layer (BERT's pooler, DistilBERT's pre_classifier): the probe is fitted on the hidden
layer's output as the model built it (BERT: the pre-trained pooler where the checkpoint has one; DistilBERT: its
seeded initialisation), and only the output layer is set. So the whole head, as it starts, computes exactly the
probe's predictions; the hidden layer is still trained in full with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..inference.classifier import Reading, forward_logits
from ..modeling.model import output_layer

# Texts the probe reads (a seeded sample of the training split above this). One forward pass over them costs
# about a third of an epoch at this size; beyond it the probe's fit hardly moves, and with thousands of labels
# the head's start matters least.
PROBE_TEXTS = 1000


def head_features(model: torch.nn.Module, encoder: Any, texts: Sequence[str], precision: str) -> np.ndarray:
    """What the output layer receives for each text, in eval mode (no dropout), in the texts' order."""
    layer = output_layer(model, model.config.num_labels)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda module, args: captured.append(args[0]))

    def call(batch: dict[str, torch.Tensor], index: np.ndarray) -> torch.Tensor:
        model(**batch)
        features = captured.pop()
        if features.dim() == 3:  # decoder heads (GPT-2) score every token, then keep the last real one's
            real = batch["input_ids"] != model.config.pad_token_id
            positions = torch.arange(real.shape[1], device=real.device)
            last = (positions * real).argmax(-1)  # transformers' own rule, for left and right padding alike
            features = features[torch.arange(len(last), device=last.device), last]
        return features

    try:
        encoded, _ = encoder.encode(list(texts))
        return forward_logits(model, encoder.tokenizer, encoded, Reading(precision=precision), width=layer.in_features,
                              call=call)  # fmt: skip
    finally:
        hook.remove()


def start_head_at_probe(
    model: torch.nn.Module, encoder: Any, examples: tuple[Sequence[str], Any], problem: Any, precision: str, seed: int
) -> int:
    """Set the output layer to the probe fitted on (up to PROBE_TEXTS of) the (texts, labels) `examples`; returns
    how many texts it read."""
    texts, labels = examples
    if len(texts) > PROBE_TEXTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), PROBE_TEXTS, replace=False))
        texts, labels = [texts[i] for i in keep], np.asarray(labels)[keep]
    layer = output_layer(model, model.config.num_labels)
    features = head_features(model, encoder, texts, precision)
    weight, bias = problem.probe(features, np.asarray(labels), layer.out_features, seed, layer.bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return len(texts)
