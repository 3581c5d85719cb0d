"""The benchmark commands' options (flags generated from them, as for every command)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BenchOptions(_Options):
    """`bench`: the tutorial's recipe against this project's defaults, on one model and data."""

    data: str = Field(description="Folder with train.parquet and validation.parquet (text and label columns)")
    model: str | None = Field(
        None,
        description="Pre-trained encoder: a local directory or a hub name (needed unless --shaped-only --tokenizer)",
    )
    quick: bool = Field(False, description="A smaller workload that finishes in about 5 minutes")
    max_length: int = Field(256, gt=8, description="Tokens per review for both paths")
    train_samples: int | None = Field(None, gt=0, description="Training reviews [quick: 400, full: 2000]")
    eval_samples: int | None = Field(
        None, gt=0, description="Validation reviews, also the prediction workload [quick: 300, full: 1000]"
    )
    epochs: float | None = Field(None, gt=0, description="Epochs for both paths [1]")
    distilbert_shaped: bool = Field(True, description="Also the random-weight DistilBERT-shaped throughput run")
    shaped_only: bool = Field(
        False, description="Only the DistilBERT-shaped throughput run (no trained weights needed)"
    )
    tokenizer: str | None = Field(
        None, description="Uncased WordPiece tokenizer folder for the DistilBERT-shaped model [the --model's]"
    )
    shaped_train_samples: int | None = Field(
        None, gt=0, description="Training reviews for the DistilBERT-shaped run [quick: 64, full: 256]"
    )
    shaped_predict_samples: int | None = Field(
        None, gt=0, description="Reviews predicted by the DistilBERT-shaped run [quick: 128, full: 512]"
    )
    output: str | None = Field(None, description="Also write the full report as JSON here")


class EngineBenchOptions(_Options):
    """`bench-engines`: one run's prediction through every engine."""

    data: str = Field(description="Labelled CSV/TSV/JSON/JSONL/Parquet file (read as `evaluate` reads it for the run)")
    rows: int = Field(1000, gt=0, description="Rows to predict (a stratified, seeded sample of --data)")
    output: str | None = Field(None, description="Also write the results as JSON here")


class ServeBenchOptions(_Options):
    """`bench-serve`: a bounded loopback load against fresh servers."""

    data: str = Field(description="CSV/TSV/JSON/JSONL/Parquet/.txt file whose text column supplies the requests")
    text_column: str | None = Field(
        None, description="Column of --data holding the texts [the runs' --text-column, else text]"
    )
    requests: int = Field(2000, gt=0, description="Requests per mode")
    concurrency: int = Field(16, gt=0, description="Concurrent clients")
    batch_wait_ms: float = Field(5.0, ge=0, description="Micro-batching window to compare")
    mix: Literal["uniform", "skewed", "both"] = Field(
        "both", description="With several runs: requests spread evenly, or 70% to the first run"
    )
    output: str | None = Field(None, description="Also write the results as JSON here")
