"""Which layers LoRA adapts and which head modules train in full, per architecture: the defaults, and the
user's --lora-targets checked against the model with peft's own matching."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import UserError

# The LoRA paper adapts the attention query and value projections; their names differ per architecture.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "distilbert": ["q_lin", "v_lin"],
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "albert": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "mpnet": ["q", "v"],
}
# Classification-head modules trained in full. peft's SEQ_CLS default keeps only classifier/score, which leaves
# DistilBERT's pre_classifier and BERT's pooler frozen at their (random or pre-training) values.
HEAD_MODULES = ("pre_classifier", "pooler", "classifier", "score")


def linear_layer_paths(model: torch.nn.Module) -> list[str]:
    """Full names of the layers LoRA can adapt (Linear, and GPT-2's Conv1D)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
    ]


def resolve_lora_targets(model: torch.nn.Module, targets: Sequence[str] | None) -> list[str]:
    """The given targets checked against the model, or the architecture's query+value projections."""
    paths = linear_layer_paths(model)
    available = sorted({path.rsplit(".", 1)[-1] for path in paths})
    model_type = getattr(model.config, "model_type", "unknown")
    if not targets:
        if model_type not in DEFAULT_TARGETS:
            raise UserError(
                f"no default LoRA targets for model type {model_type!r}; set --lora-targets to some of: "
                f"{', '.join(available)} (or all-linear)"
            )
        return list(DEFAULT_TARGETS[model_type])
    if list(targets) == ["all-linear"]:
        return ["all-linear"]
    # peft's own rule for a list: a layer is adapted where its full name is a target or ends in "." + target, so
    # a path such as layer.5.attention.self.query adapts one layer's query projection only.
    unknown = [t for t in targets if not any(p == t or p.endswith("." + t) for p in paths)]
    if unknown:
        raise UserError(
            f"--lora-targets {', '.join(unknown)} match no layer of this {model_type} model; "
            f"its linear layers are: {', '.join(available)} (or all-linear, or the end of a layer's path to "
            f"adapt only that one, e.g. {_example_path(paths, DEFAULT_TARGETS.get(model_type, ()))})"
        )
    return list(targets)


def _example_path(paths: list[str], defaults: Sequence[str]) -> str:
    """The last layer's first default target, as a path without the model's own prefix."""
    chosen = [p for p in paths if p.rsplit(".", 1)[-1] in defaults[:1]] or paths or ["layer.0.query"]
    return chosen[-1].split(".", 1)[-1]


def head_modules(model: torch.nn.Module) -> list[str]:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [name for name in HEAD_MODULES if name in present]
