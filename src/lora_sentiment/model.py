"""Model stage: tokenizer (with a pad token), a sequence classifier with a fresh head, and LoRA on top."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .errors import UserError, first_line
from .hub import is_local, load_with_fallback

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


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    def load(**kwargs: Any) -> Any:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, **kwargs)

    if is_local(name):
        try:
            return load()
        except (OSError, ValueError) as exc:
            raise UserError(f"could not load a tokenizer from {name}: {first_line(exc)} (check --model)") from exc
    return load_with_fallback("tokenizer", name, "--model", load, cache_kwarg="local_files_only")


def ensure_pad_token(tokenizer: Any) -> bool:
    """Add a [PAD] token when the tokenizer has none (GPT-style vocabularies); True when one was added."""
    if tokenizer.pad_token is not None:
        return False
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    return True


def model_max_length(model_config: Any, tokenizer: Any) -> int | None:
    """The longest input the model's position embeddings allow (RoBERTa keeps 2 positions for padding offsets)."""
    limits = []
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions:
        pad_offset = 2 if getattr(model_config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"} else 0
        limits.append(positions - pad_offset)
    declared = getattr(tokenizer, "model_max_length", None)
    if declared and declared < 1_000_000:
        limits.append(declared)
    return min(limits) if limits else None


def base_dropout_overrides(model_config: Any, dropout: float) -> dict[str, float]:
    """Config values that set the frozen encoder's dropout to `dropout`, leaving the head's own as it was.

    Attention-probability dropout forces PyTorch's SDPA off its fused kernel, and CPU dropout masks are slow:
    on this project's 2-core benchmark machine it made 512-token training steps about 5x slower."""
    values = model_config.to_dict()
    overrides = {
        key: dropout
        for key, value in values.items()
        if ("dropout" in key or "pdrop" in key)
        and isinstance(value, float)
        and not any(part in key for part in ("classif", "summary", "pooler", "qa_"))
    }
    # BERT-family heads fall back to hidden_dropout_prob when classifier_dropout is None: keep that value.
    if "classifier_dropout" in values and values["classifier_dropout"] is None and "hidden_dropout_prob" in overrides:
        overrides["classifier_dropout"] = values["hidden_dropout_prob"]
    return overrides


def load_classifier_model(
    name: str,
    label_names: Sequence[str],
    *,
    tokenizer: Any,
    trust_remote_code: bool = False,
    base_dropout: float | None = None,
    attention: str | None = None,
    max_length: int = 512,
) -> Any:
    """AutoModelForSequenceClassification with the run's labels, embeddings sized to the tokenizer.

    `base_dropout` replaces the encoder's dropout rates (None keeps the model's own)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    def load_config(**kwargs: Any) -> Any:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, **kwargs)

    def load(config: Any, **kwargs: Any) -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            name,
            config=config,
            trust_remote_code=trust_remote_code,
            # A checkpoint that already has a head for another label count gets a fresh one.
            ignore_mismatched_sizes=True,
            # Pickled weights (pytorch_model.bin) can run code when read; safetensors cannot.
            use_safetensors=True,
            **kwargs,
        )

    try:
        if is_local(name):
            config = load_config()
        else:
            config = load_with_fallback("model", name, "--model", load_config, cache_kwarg="local_files_only")
        config.num_labels = len(label_names)
        config.id2label = dict(enumerate(label_names))
        config.label2id = {n: i for i, n in enumerate(label_names)}
        if base_dropout is not None:
            for key, value in base_dropout_overrides(config, base_dropout).items():
                setattr(config, key, value)
        if attention is not None:
            extra = {"attn_implementation": resolve_attention(attention, config, default_device(), max_length)}
        else:
            extra = {}
        if is_local(name):
            model = load(config, **extra)
        else:
            model = load_with_fallback("model", name, "--model", lambda **kw: load(config, **extra, **kw), cache_kwarg="local_files_only")
    except (OSError, ValueError) as exc:
        if "custom code" in str(exc) or "trust_remote_code" in str(exc):
            raise UserError(
                f"{name} needs its own model code to load; read it, and pass --trust-remote-code only if you trust it"
            ) from exc
        if "safetensors" in str(exc).lower():
            raise UserError(
                f"{name} has no safetensors weights, and pickled weights are not loaded (they can run code); "
                "convert the model to safetensors (model.save_pretrained) or pick another --model"
            ) from exc
        raise UserError(f"could not load a sequence-classification model from {name}: {first_line(exc)} (check --model)") from exc
    known = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > known:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        # New rows (the added pad token) set to the mean embedding, not sampled: a reload re-creates them exactly.
        with torch.no_grad():
            weight = model.get_input_embeddings().weight
            weight[known:] = weight[:known].mean(dim=0)
    if model.config.pad_token_id is None or model.config.pad_token_id >= len(tokenizer):
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def resolve_attention(requested: str, model_config: Any, device: torch.device, max_length: int = 512) -> str:
    """auto -> eager attention for CPU training of short inputs with small heads, SDPA otherwise.

    PyTorch's CPU flash-attention backward is slow for 32-dim heads (MiniLM): at 256 tokens eager attention
    trained 1.3-2.3x faster on this project's benchmark machine. At 512 tokens the S x S probabilities
    eager attention keeps make it the slower one (4.1 vs 5.0 samples/s), and for 64-dim heads (DistilBERT,
    BERT-base) the two were even, so SDPA, the library default, stays there."""
    if requested != "auto":
        return requested
    hidden = getattr(model_config, "hidden_size", None) or getattr(model_config, "dim", None)
    heads = getattr(model_config, "num_attention_heads", None) or getattr(model_config, "n_heads", None)
    if device.type == "cpu" and hidden and heads and hidden // heads <= 32 and max_length <= 256:
        return "eager"
    return "sdpa"


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """Distinct short names of the layers LoRA can adapt (Linear, and GPT-2's Conv1D)."""
    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            names.add(full_name.rsplit(".", 1)[-1])
    return sorted(names)


def resolve_lora_targets(model: torch.nn.Module, targets: Sequence[str] | None) -> list[str]:
    """The given targets checked against the model, or the architecture's query+value projections."""
    available = linear_layer_names(model)
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
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise UserError(
            f"--lora-targets {', '.join(unknown)} match no layer of this {model_type} model; "
            f"its linear layers are: {', '.join(available)} (or all-linear)"
        )
    return list(targets)


def head_modules(model: torch.nn.Module) -> list[str]:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [name for name in HEAD_MODULES if name in present]


@dataclass
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


def add_lora(model: torch.nn.Module, *, r: int, alpha: float, dropout: float, targets: list[str]) -> Any:
    """Wrap the classifier in a PeftModel: LoRA on `targets`, the head trained in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora_config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        modules_to_save=head_modules(model),
    )
    try:
        return get_peft_model(model, lora_config)
    except ValueError as exc:
        raise UserError(f"could not apply LoRA: {first_line(exc)} (check --lora-targets)") from exc


def cast_frozen_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Store the frozen base weights in `dtype`; LoRA and head weights (the trained ones) stay fp32.

    Under autocast the frozen weights were re-cast to bf16 at every matmul of every step; stored in bf16
    they are not, and take half the memory. The matmuls see exactly the same bf16 values either way."""
    for parameter in model.parameters():
        if not parameter.requires_grad and parameter.dtype == torch.float32:
            parameter.data = parameter.data.to(dtype)


def count_parameters(model: Any) -> ParameterCount:
    trainable, total = model.get_nb_trainable_parameters()
    return ParameterCount(int(trainable), int(total))



def default_device() -> torch.device:
    if torch.cuda.is_available():
        from .distributed import local_rank

        return torch.device("cuda", local_rank())  # one GPU per process under torchrun / accelerate launch
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matmuls run several times faster than fp32 on such CPUs."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(requested: str, device: torch.device) -> str:
    """auto -> bf16 on GPUs that have it (else fp16) and on CPUs with bf16 units; fp32 elsewhere."""
    if requested == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a CUDA GPU; use --precision bf16 or fp32 on this machine")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def configure_attention_backends(device: torch.device) -> None:
    """On GPUs, keep SDPA off its cuDNN backend, which plans each new sequence length anew: with length-
    grouped batches every step brings a new length, and on an H100 that made our training slower than the
    tutorial's fixed-length batches. The flash and memory-efficient kernels need no per-shape planning."""
    if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def pad_multiple(device: torch.device) -> int | None:
    """Batch lengths rounded up to a multiple of 16 on GPUs keep SDPA on its fused kernels when a batch needs
    a padding mask; on CPUs the extra padding would only cost compute."""
    return 16 if device.type == "cuda" else None


def synchronize() -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
