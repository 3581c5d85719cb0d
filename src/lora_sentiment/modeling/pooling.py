"""What the classification head reads: `--pooling first-token` or `mean`.

The heads of BERT-family classifiers read the final state of the first token ([CLS], <s>). Sentence encoders
such as all-MiniLM-L6-v2 were trained with mean pooling, and plain masked-language models never trained that
token for anything, so with few labels the head reads a state that carries little of the text. `mean` starts the
last layer's attention query at zero: every token's attention then spreads evenly over the text (padding
masked), so the first token's final state starts from an average of the whole text's values; the query is then
trained in full, so the run can learn where to look from there. The other tokens' final states feed nothing.

Nothing leaves the transformers architecture: the query layer is one more module peft saves beside the head
(`modules_to_save`) and excludes from LoRA, so the run still loads with `PeftModel.from_pretrained` on
`AutoModelForSequenceClassification`, merges, and exports like any other."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError

# The query projection per architecture whose head reads the first token and whose attention scores are the
# plain query-key products (so a zero query means even attention). Not ALBERT: its layers share one set of
# weights. Not DeBERTa or MPNet: relative-position terms add to the scores whatever the query.
FIRST_TOKEN_QUERIES: dict[str, str] = {
    "bert": "query",
    "distilbert": "q_lin",
    "roberta": "query",
    "xlm-roberta": "query",
    "camembert": "query",
    "electra": "query",
}


def resolve_pooling(requested: str, model: torch.nn.Module) -> str:
    """auto -> mean where the architecture allows it, else first-token; mean where it does not: an error."""
    model_type = getattr(model.config, "model_type", "unknown")
    if requested == "auto":
        return "mean" if model_type in FIRST_TOKEN_QUERIES else "first-token"
    if requested == "mean" and model_type not in FIRST_TOKEN_QUERIES:
        raise UserError(
            f"--pooling mean is not available for model type {model_type!r} (it works for "
            f"{', '.join(sorted(FIRST_TOKEN_QUERIES))}); use --pooling first-token"
        )
    return requested


def last_query_path(model: torch.nn.Module) -> str:
    """Path of the last layer's query projection inside `model` (as peft names modules to save)."""
    name = FIRST_TOKEN_QUERIES[model.config.model_type]
    paths = [path for path, _ in model.named_modules() if path.rsplit(".", 1)[-1] == name]
    if not paths:
        raise UserError(f"--pooling mean: this model has no {name!r} layer; use --pooling first-token")
    return paths[-1]


def start_pooling(model: torch.nn.Module, pooling: str) -> list[str]:
    """Set up `pooling` on the freshly loaded classifier; the encoder modules it trains in full (peft saves
    them beside the head and must not put LoRA on them)."""
    if pooling != "mean":
        return []
    path = last_query_path(model)
    query: Any = model.get_submodule(path)
    with torch.no_grad():
        query.weight.zero_()
        if query.bias is not None:
            query.bias.zero_()
    return [path]
