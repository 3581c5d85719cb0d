"""Model stage: tokenizer (with a pad token), a sequence classifier with a fresh head, and LoRA on top.

`setup_model` is the one call training makes; the pieces below it are what prediction and export reuse."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from ..config import TrainConfig
from ..data.encoding import TextEncoder
from ..errors import UserError, first_line
from ..hub import is_local, load_with_fallback
from ..problems.space import LabelSpace
from .device import TORCH_DTYPES, configure_attention_backends, default_device, resolve_attention
from .first_token import read_first_token_only
from .pooling import resolve_pooling, start_pooling
from .quiet import quiet_loading
from .targets import head_modules, resolve_lora_targets


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
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


@dataclass(frozen=True)
class ModelSettings:
    """How a base model is loaded: `base_dropout` replaces the encoder's dropout rates (None keeps the model's
    own); `attention` is --attention, resolved for `max_length` and the training's `precision` (None: the model's
    default)."""

    trust_remote_code: bool = False
    base_dropout: float | None = None
    attention: str | None = None
    max_length: int = 512
    precision: str = "bf16"


def load_classifier_model(
    name: str, labels: LabelSpace | Sequence[str], *, tokenizer: Any, settings: ModelSettings | None = None,
    **given: Any,
) -> Any:  # fmt: skip
    """AutoModelForSequenceClassification with the run's labels, embeddings sized to the tokenizer.

    `labels` is the run's LabelSpace (a list of names means single-label); `given`: ModelSettings' fields."""
    space = labels if isinstance(labels, LabelSpace) else LabelSpace("single-label", list(labels))
    settings = settings or ModelSettings(**given)
    trust_remote_code, attention = settings.trust_remote_code, settings.attention

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
        config = _from_local_or_hub(name, load_config)
        _set_labels_and_dropout(config, space, settings.base_dropout)
        extra = {}
        if attention is not None:
            extra["attn_implementation"] = resolve_attention(
                attention, config, default_device(), settings.max_length, settings.precision
            )
        with quiet_loading():
            model = _from_local_or_hub(name, lambda **kw: load(config, **extra, **kw))
    except (OSError, ValueError) as exc:
        raise _model_load_error(name, exc) from exc
    _fit_embeddings_to(model, tokenizer)
    read_first_token_only(model)
    return model


def _from_local_or_hub(name: str, load: Callable[..., Any]) -> Any:
    return load() if is_local(name) else load_with_fallback("model", name, "--model", load, "local_files_only")


def _set_labels_and_dropout(config: Any, space: LabelSpace, base_dropout: float | None) -> None:
    # problem_type picks the loss (cross-entropy, binary cross-entropy per tag, MSE) and, in an export,
    # the activation transformers.pipeline applies.
    config.num_labels = space.num_outputs
    config.problem_type = space.hf_problem_type
    config.id2label = dict(enumerate(space.names[: space.num_outputs]))
    config.label2id = {n: i for i, n in config.id2label.items()}
    if base_dropout is not None:
        for key, value in base_dropout_overrides(config, base_dropout).items():
            setattr(config, key, value)


def _model_load_error(name: str, exc: Exception) -> UserError:
    if "custom code" in str(exc) or "trust_remote_code" in str(exc):
        return UserError(
            f"{name} needs its own model code to load; read it, and pass --trust-remote-code only if you trust it"
        )
    if "safetensors" in str(exc).lower():
        return UserError(
            f"{name} has no safetensors weights, and pickled weights are not loaded (they can run code); "
            "convert the model to safetensors (model.save_pretrained) or pick another --model"
        )
    return UserError(f"could not load a sequence-classification model from {name}: {first_line(exc)} (check --model)")


def _fit_embeddings_to(model: Any, tokenizer: Any) -> None:
    known = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > known:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        # New rows (the added pad token) set to the mean embedding, not sampled: a reload re-creates them exactly.
        with torch.no_grad():
            weight = model.get_input_embeddings().weight
            weight[known:] = weight[:known].mean(dim=0)
    if model.config.pad_token_id is None or model.config.pad_token_id >= len(tokenizer):
        model.config.pad_token_id = tokenizer.pad_token_id


@dataclass
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


def add_lora(
    model: torch.nn.Module, *, r: int, alpha: float, dropout: float, targets: list[str], full: Sequence[str] = ()
) -> Any:
    """Wrap the classifier in a PeftModel: LoRA on `targets`, the head and the encoder modules `full` (paths)
    trained in full."""
    lora_config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        modules_to_save=head_modules(model) + list(full),
        exclude_modules=list(full) or None,
    )
    try:
        with warnings.catch_warnings():
            # peft 0.21 asks transformers' deprecated `is_gradient_checkpointing` (a FutureWarning on every run,
            # from Python; the CLI hides FutureWarnings): peft's to change, nothing a user can act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
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


# ------------------------------------------------------------------------------------------ whole setups


@dataclass
class ModelSetup:
    """Everything training needs from the model side, and the config as it will run."""

    model: Any  # PeftModel on the device, frozen weights in the compute dtype
    tokenizer: Any
    encoder: TextEncoder
    config: TrainConfig  # what runs: the model's limits and defaults filled in
    parameters: ParameterCount
    added_pad_token: bool


def setup_model(
    requested: TrainConfig,
    space: LabelSpace,
    precision: str,
    log: Callable[[str], None],
    output_start: np.ndarray | None = None,
    start_head: Callable[[Any, TextEncoder], None] | None = None,
) -> ModelSetup:
    """Tokenizer, classifier, LoRA and the resolved config, ready to train on the default device.
    `output_start` sets the output layer's starting bias (see start_output_at); `start_head(model, encoder)`
    then may set the head from the frozen model, on the device, before LoRA is added (the linear probe)."""
    tokenizer = load_tokenizer(requested.model, trust_remote_code=requested.trust_remote_code)
    added_pad_token = ensure_pad_token(tokenizer)
    if added_pad_token:
        log("The tokenizer had no pad token: added [PAD] and resized the model's embeddings.")
    model = load_classifier_model(
        requested.model,
        space,
        tokenizer=tokenizer,
        trust_remote_code=requested.trust_remote_code,
        base_dropout=requested.base_dropout,
        attention=requested.attention,
        max_length=requested.tokens,
        precision=precision,
    )
    if output_start is not None:
        start_output_at(model, output_start)
    config = resolve_config(requested, model, tokenizer, log, space)
    encoder = TextEncoder.for_config(tokenizer, config)
    device = default_device()
    model.to(device)
    configure_attention_backends(device)
    full = start_pooling(model, config.pooling)
    if start_head is not None:
        start_head(model, encoder)
    heads = head_modules(model)
    model = add_lora(
        model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout, targets=config.lora_targets,
        full=full,
    )  # fmt: skip
    parameters = count_parameters(model)
    log(f"LoRA on {', '.join(config.lora_targets)}; trained in full: {', '.join(heads + full)}")
    log(str(parameters))
    if precision in ("bf16", "fp16"):
        cast_frozen_weights(model, TORCH_DTYPES[precision])
    return ModelSetup(model, tokenizer, encoder, config, parameters, added_pad_token)


def output_start(space: LabelSpace, labels: np.ndarray) -> np.ndarray | None:
    """Where the head's outputs should start, from the training labels: each tag at its frequency (bias =
    log-odds, as for rare classes in Lin et al. 2017), a number at its mean. From zero, the first epochs
    learn only how rare each tag is, or where the numbers lie, and the text signal comes late."""
    return space.problem.output_start(np.asarray(labels))


def output_layer(model: torch.nn.Module, outputs: int | None = None) -> torch.nn.Linear:
    """The classifier's last linear layer (with `outputs` outputs, when given)."""
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and outputs in (None, m.out_features)][-1]


def start_output_at(model: Any, bias: np.ndarray) -> None:
    output = output_layer(model, len(bias))
    if output.bias is None:  # GPT-2's score layer: nothing to start (its outputs start near 0)
        return
    with torch.no_grad():
        output.bias.copy_(torch.as_tensor(bias, dtype=output.bias.dtype))


def resolve_config(
    requested: TrainConfig, model: Any, tokenizer: Any, log: Callable[[str], None], space: LabelSpace | None = None
) -> TrainConfig:
    """What was asked, completed by what the model and the data say: the one place the settings that run are
    decided (max length, LoRA targets, problem type, the metric that picks the kept epoch)."""
    space = space or LabelSpace("single-label", [str(n) for n in model.config.id2label.values()])
    updates: dict[str, Any] = {
        "lora_targets": resolve_lora_targets(model, requested.lora_targets),
        "resume": False,
        "problem_type": space.problem_type,
        "pooling": resolve_pooling(requested.pooling, model),
    }
    if requested.metric_for_best_model == "auto":
        updates["metric_for_best_model"] = space.problem.best_metric
    limit = model_max_length(model.config, tokenizer)
    if requested.max_length == "auto":  # not decided by a run's data (data/sizing.py): the usual length
        updates["max_length"] = requested.tokens
    if limit is not None and requested.tokens > limit:
        if requested.max_length != "auto":
            log(f"--max-length {requested.max_length} is above this model's maximum; using {limit}.")
        updates["max_length"] = limit
    return requested.model_copy(update=updates)


def load_run_model(run: Any, *, merge: bool = True) -> tuple[Any, Any]:
    """A finished run's base model with its adapter (the base model's own dropout, fp32, on the CPU) and its
    tokenizer. `merge` folds LoRA into the base weights, which removes its extra matmuls from every forward
    pass and leaves a plain transformers model."""
    config = run.config
    run.check_base()
    tokenizer = load_tokenizer(str(run.path))
    base = load_classifier_model(
        config.model, run.space, tokenizer=tokenizer, trust_remote_code=config.trust_remote_code
    )
    try:
        with quiet_loading():
            model = PeftModel.from_pretrained(base, str(run.path))
    except Exception as exc:  # peft raises ValueError, OSError, safetensors errors, KeyError...
        raise UserError(
            f"could not load the LoRA adapter in {run.path}: {first_line(exc)} (is it a finished run directory?)"
        ) from exc
    return (model.merge_and_unload() if merge else model), tokenizer
