"""The typed settings: `TrainConfig` flows through every stage (defaults < preset < YAML file < CLI flags);
`ServeSettings` holds the server's limits. Each field is a CLI flag, described once here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .errors import UserError, format_validation_error
from .problems.base import REGISTRY as PROBLEM_TYPES

# The tutorial's unseen reviews, predicted before and after training on IMDB (data/examples.py: other data's own).
DEFAULT_EXAMPLES = ["It was good.", "Not a fan, don't recommed.", "Better than the first one.",
                    "This is not worth watching even once.", "This one is a pass."]  # fmt: skip

API_KEY_ENV = "LORA_SENTIMENT_API_KEY"
MAX_LENGTH = 512  # --max-length auto, but for a set of one batch (data/sizing.py)

Truncation = Literal["tail", "head", "head+tail"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Attention = Literal["auto", "sdpa", "eager"]
ReportTarget = Literal["tensorboard", "mlflow", "wandb"]
# The registered problem types (problems/base.py): a new one is a --problem-type choice without an edit here.
ProblemTypeChoice = Literal[("auto", *PROBLEM_TYPES)]  # type: ignore[valid-type]


# Settings that are `auto` or a number: what a number must be, and how the error says it.
_AUTO_OR: dict[str, tuple[Callable[[float], bool], str]] = {
    "epochs": (lambda x: x > 0, "a positive number of epochs"),
    "learning_rate": (lambda x: x > 0, "a positive learning rate"),
    "eval_fraction": (lambda x: 0 < x < 1, "a share between 0 and 1"),
    "max_length": (lambda x: x > 8 and x == int(x), "a whole number of tokens above 8"),
    "eval_batch_size": (lambda x: x > 0 and x == int(x), "a positive whole number of texts"),
}


class TrainConfig(BaseModel):
    """Everything a training run needs. Each field is also a CLI flag (`lora_r` -> `--lora-r`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- data
    data: str = Field(
        "imdb", description="Hub dataset, CSV/TSV/JSON/JSONL/Parquet file, folder of split files or aclImdb"
    )
    data_config: Optional[str] = Field(None, description="Hub dataset configuration name, if the dataset has several")
    eval_data: Optional[str] = Field(None, description="Evaluation data, read as --data is (else taken from --data)")
    train_split: str = Field("train", description="Split of --data used for training")
    eval_split: Optional[str] = Field(
        None, description="Split of --data used for evaluation [validation, else test, else carved from train]"
    )
    text_column: str = Field("text", description="Column holding the text")
    label_column: str = Field("label", description="Column holding the label (integers or strings)")
    problem_type: ProblemTypeChoice = Field(
        "auto",
        description="single-label (one class per text), multi-label (any number of tags) or regression (a number) "
        "[auto: label lists, --label-separator or --label-columns -> multi-label; non-integer numbers -> regression]",
    )
    label_separator: Optional[str] = Field(
        None, description="Split string labels on this into several tags (multi-label), e.g. ','"
    )
    label_columns: Optional[list[str]] = Field(
        None, description="Several 0/1 columns, one per tag (multi-label), instead of --label-column"
    )
    threshold: Optional[float] = Field(
        None,
        ge=0,
        le=1,
        description="Multi-label decision threshold for every tag [tuned per tag on the evaluation split]",
    )
    class_weights: str = Field(
        "auto",
        description="Loss weights: none, balanced (n / (classes x count); multi-label: a positive weight per tag "
        "from its frequency), a JSON object / file of {label: weight}, or auto (balanced for skewed classes)",
    )
    label_names: Optional[list[str]] = Field(
        None, description="Names for integer labels 0..K-1 [binary 0/1: Negative,Positive]"
    )
    eval_fraction: Union[Literal["auto"], float] = Field(
        "auto",
        description="Share of train carved out for evaluation when there is no eval split [auto: 0.2; 0.05 for a "
        "small training set, see --learning-rate]",
    )
    folds: Optional[int] = Field(
        None,
        ge=2,
        le=20,
        description="Also score the recipe by K-fold cross-validation on the training split (K more runs, each "
        "scoring texts it never saw), for data too small for an evaluation split to trust; the kept model is "
        "trained as without it",
    )
    max_train_samples: Optional[int] = Field(None, gt=0, description="Stratified, seeded subsample of the train split")
    max_eval_samples: Optional[int] = Field(None, gt=0, description="Stratified, seeded subsample of the eval split")
    strip_html: bool = Field(True, description="Replace HTML tags such as IMDB's <br /> with spaces before tokenizing")

    # --- tokenization
    max_length: Union[Literal["auto"], int] = Field("auto", description="Maximum tokens per text, clipped to the "
        "model's maximum [auto: 512; 128 for a single-label set of one batch (16 texts at batch 16) under --epochs "
        "auto, whose every step reads every text]")  # fmt: skip
    truncation: Truncation = Field("head+tail", description="Which tokens of a long text to keep")
    head_tokens: Optional[int] = Field(
        None,
        ge=0,
        description="Tokens kept from the start with --truncation head+tail [a quarter of --max-length: 128 of 512]",
    )

    # --- model and LoRA
    model: str = Field("distilbert-base-uncased", description="Hub model id or local model directory")
    trust_remote_code: bool = Field(
        False, description="Allow model code from the hub (off: only built-in architectures)"
    )
    base_dropout: Optional[float] = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout inside the frozen encoder (attention and hidden states); 0 lets SDPA use its fused "
        "kernel, several times faster on CPU; 'keep' keeps the model's own",
    )
    attention: Attention = Field(
        "auto",
        description="Attention kernel for training [auto: eager for bf16 on a CPU with heads of 32 dims or fewer, up "
        "to 256 tokens, where it measured faster than SDPA's CPU flash kernel; SDPA elsewhere, fp32 included]",
    )
    lora_r: int = Field(8, gt=0, description="LoRA rank")
    lora_alpha: float = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    # 0, not the tutorial's 0.01: its masks were 7-13 % of a training step for no measured accuracy
    # (docs/decisions.md). The imdb-truncated preset keeps 0.01.
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input")
    lora_targets: Optional[list[str]] = Field(
        None, description="Modules to adapt: names, a layer path's end, or all-linear [query + value]"
    )
    # auto -> mean: with tens of labels the first token's state (never trained to summarise a text in sentence
    # encoders or masked-language models) left the head below TF-IDF; mean lifted it above on every draw measured
    # (docs/benchmarks/small-data.md).
    pooling: Literal["auto", "first-token", "mean"] = Field(
        "auto",
        description="What the head reads: first-token (the architecture's own head on the first token's state) or "
        "mean (the last layer's query starts at zero, so that state starts as an average over the text, then is "
        "trained) [auto: mean for BERT, DistilBERT, RoBERTa and ELECTRA-style models, else first-token]",
    )

    # --- training
    learning_rate: Union[Literal["auto"], float] = Field(
        "auto",
        description="Peak learning rate (linear decay) [auto: 1e-3; 5e-4 for a small training set, one that "
        "--epochs auto passes over 20 times or more (80 texts at batch 16)]",
    )
    batch_size: int = Field(16, gt=0, description="Training batch size per device")
    gradient_accumulation_steps: int = Field(
        1,
        gt=0,
        description="Batches whose gradients add up to one optimizer step (effective batch = batch size x this)",
    )
    group_by_length: bool = Field(
        True,
        description="Batch reviews of similar length together so little compute goes to padding (on a CPU, a batch "
        "of mixed lengths also runs as length-sorted parts)",
    )
    # auto: on a CPU 64 took 12-14 % longer to evaluate than 16 (modeling/device.py's CPU_BATCH says why).
    eval_batch_size: Union[Literal["auto"], int] = Field("auto", description="Evaluation batch size per device "
        "[auto: 16 on a CPU, 64 on a GPU]")  # fmt: skip
    epochs: Union[Literal["auto"], float] = Field(
        "auto",
        description="Training epochs [auto: at least 100 optimizer steps (multi-label: 300) and 3 epochs; keeps the "
        "best epoch, stopping after 2 evaluations without improvement, when the evaluation split has 200 texts or "
        "more, else a fixed schedule keeping the last]",
    )
    # random, not probe: on MiniLM with 8-32 reviews per class and the first-token head the probe's start lost
    # 5-8 points to it (the probe fits the few texts so well that fine-tuning stalls); docs/benchmarks/small-data.md.
    head_init: Literal["random", "probe"] = Field(
        "random",
        description="How the output layer starts: random (the model's seeded init, biases at the label frequencies) "
        "or probe (a linear model fitted on the frozen encoder's features of up to 1,000 training texts, LP-FT)",
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of steps spent warming the learning rate up")
    metric_for_best_model: str = Field(
        "auto",
        description="Eval metric that picks the checkpoint kept at the end: loss or one of the problem type's "
        "metrics [auto: the problem type's choice: loss; f1_macro for multi-label]",
    )
    early_stopping_patience: Optional[int] = Field(
        None, gt=0, description="Stop after this many evaluations without improvement"
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for subsampling, splits, initialisation and shuffling")
    precision: Precision = Field(
        "auto", description="Compute precision [auto: bf16 where the hardware has it, else fp32]"
    )
    baseline: Literal["tfidf", "none"] = Field(
        "tfidf",
        description="Also fit TF-IDF + a linear model on the same training split and score it on the same "
        "evaluation split, to show what the transformer adds (seconds on CPU)",
    )
    calibration: Literal["auto", "none"] = Field(
        "auto",
        description="After training, calibrate the outputs on the evaluation split (with 50 texts or more): "
        "temperature scaling (single-label), a temperature per tag (multi-label), a split-conformal interval "
        "(regression); none keeps the raw outputs",
    )
    interval_coverage: float = Field(
        0.9, gt=0, lt=1, description="Regression: the share of true values each predicted interval is fitted to hold"
    )
    report_to: list[ReportTarget] = Field(
        default_factory=list,
        description="Also log to any of: tensorboard (RUN_DIR/tensorboard), mlflow (MLFLOW_TRACKING_URI or "
        "--mlflow-uri, else sqlite:///mlflow.db here), wandb (offline without WANDB_API_KEY); each an optional extra",
    )
    mlflow_uri: Optional[str] = Field(None, description="MLflow tracking URI for --report-to mlflow")

    # --- output
    output_dir: str = Field("runs/lora-sentiment", description="Where the adapter, tokenizer, metrics and card go")
    overwrite: bool = Field(
        False, description="Replace a non-empty --output-dir (and discard an interrupted run's checkpoints)"
    )
    resume: bool = Field(
        False, description="Continue the interrupted run of this --output-dir from its last checkpoint (same settings)"
    )
    examples: Optional[list[str]] = Field(
        None,
        description="Unseen texts predicted before and after training (default: the tutorial's five for IMDB, "
        "else five of the evaluation split's texts with their labels)",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_targets(cls, value: Any) -> Any:
        # "none" (the old default, still in earlier runs' configs), a string, commas or a list.
        items = [value] if isinstance(value, str) else list(value or [])
        parts = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
        return list(dict.fromkeys(p for p in parts if p != "none"))

    @field_validator("lora_targets", "label_names", "label_columns", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        # "q_lin,v_lin" and ["q_lin", "v_lin"] both work, from flags and from YAML.
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [part.strip() for item in value for part in str(item).split(",") if part.strip()] or None
        return value

    @field_validator("metric_for_best_model")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from .problems.metrics import all_metric_names  # the problem types' modules: only when a config is built

        known = ["auto", *all_metric_names()]
        if value not in known:
            raise ValueError(f"unknown metric {value!r}; choose one of: {', '.join(known)}")
        return value

    @field_validator("base_dropout", mode="before")
    @classmethod
    def _keep_means_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() == "keep" else value

    @field_validator(*_AUTO_OR, mode="before")
    @classmethod
    def _auto_or_number(cls, value: Any, info: ValidationInfo) -> Any:
        valid, what = _AUTO_OR[info.field_name]
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not valid(number):
            raise ValueError(f"must be auto or {what}, not {value!r}")
        return int(number) if info.field_name in ("max_length", "eval_batch_size") else number

    @field_validator("examples", mode="before")
    @classmethod
    def _one_example(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def tokens(self) -> int:  # --max-length as a number: auto is MAX_LENGTH until a run's data decides it
        return MAX_LENGTH if self.max_length == "auto" else self.max_length

    @property
    def head_token_count(self) -> int:
        return self.head_tokens if self.head_tokens is not None else self.tokens // 4

    @model_validator(mode="after")
    def _check_head_fits(self) -> TrainConfig:
        if self.truncation == "head+tail" and self.head_tokens is not None and self.head_tokens >= self.tokens - 2:
            raise ValueError(
                f"--head-tokens ({self.head_tokens}) must be smaller than --max-length ({self.tokens}) minus 2"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


class ServeSettings(BaseModel):
    """Address, limits and batching of the server; each is a `serve` flag."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 exposes it to the network")
    port: int = Field(8000, ge=0, le=65535, description="Port")
    max_texts: int = Field(64, gt=0, description="Most texts in one request")
    max_chars: int = Field(20_000, gt=0, description="Most characters in one text")
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0, description="Largest request body accepted (413 above it)")
    batch_wait_ms: float = Field(
        5.0,
        ge=0,
        description="How long the first request waits for others to share its forward pass (0: no micro-batching)",
    )
    max_batch_texts: int = Field(128, gt=0, description="Most texts merged into one forward pass")
    api_key: str | None = Field(
        None, description=f"Require this key in the X-API-Key header for /predict [env {API_KEY_ENV}]"
    )
    adapter_batching: Literal["mixed", "grouped"] = Field(
        "mixed",
        description="Several runs on one base: mixed (one forward pass for all runs' texts, peft's mixed-adapter "
        "batch) or grouped (one pass per run)",
    )
    runs_poll_s: float = Field(10.0, gt=0, description="With --runs-dir: seconds between looks for new or removed runs")


PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial exactly: 1000/1000 reviews, r=4 on q_lin, lr 1e-3, batch 4, 10 epochs, left truncation.
    "imdb-truncated": dict(
        model="distilbert-base-uncased",
        data="imdb",
        max_train_samples=1000,
        max_eval_samples=1000,
        lora_r=4,
        lora_alpha=32,
        lora_dropout=0.01,
        lora_targets=["q_lin"],
        pooling="first-token",
        learning_rate=1e-3,
        batch_size=4,
        epochs=10,
        head_init="random",
        weight_decay=0.01,
        warmup_ratio=0.0,
        truncation="tail",
        max_length=512,
        strip_html=False,
        base_dropout=None,
        group_by_length=False,
        attention="sdpa",
        metric_for_best_model="loss",
    ),
}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path} (check the --config path)")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in loaded.items()}


def build_config(
    overrides: dict[str, Any] | None = None, *, preset: str | None = None, config_file: str | Path | None = None
) -> TrainConfig:
    """Merge defaults < preset < YAML file < explicit overrides into a validated TrainConfig."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown --preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if config_file is not None:
        from_file = read_yaml(config_file)
        file_preset = from_file.pop("preset", None)
        if file_preset is not None and preset is None:
            return build_config({**from_file, **(overrides or {})}, preset=file_preset)
        values.update(from_file)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, TrainConfig.model_fields)) from None
