"""Typed options of the commands other than `train` (TrainConfig, config.py) and `serve` (ServeSettings): how a
model is loaded, what `evaluate` reads, how files are predicted, how a run is exported, how `tune` searches.
Each field is a CLI flag (cli/flags.py builds them), its description the flag's help and its Field bounds the
checks; the Python API takes the same models, or their fields as keywords."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .config import Precision
from .errors import note_options_of

LongText = Literal["truncate", "chunks"]
Engine = Literal["auto", "torch", "openvino", "onnx"]
InputFormat = Literal["csv", "tsv", "json", "jsonl", "parquet", "txt"]
OutputFormat = Literal["csv", "tsv", "jsonl", "parquet"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def of(cls: type[_O], value: Any = None, given: Mapping[str, Any] | None = None) -> _O:
        """What a Python caller passed: this model or a dict of its fields (positionally, as `train` takes its config),
        with `given` keywords over it. A dict failed deep inside with "'dict' object has no attribute ..."."""
        given = dict(given or {})
        if isinstance(value, cls):
            return cls(**{**value.model_dump(), **given}) if given else value
        if value is None or isinstance(value, Mapping):
            return cls(**{**(value or {}), **given})
        raise TypeError(f"options: give {cls.__name__} or a dict of its fields, not {type(value).__name__}")


_O = TypeVar("_O", bound=_Options)


class LoadOptions(_Options):
    """How a run or export is loaded for prediction: `predict`, `evaluate`, `serve` and the workers share them."""

    precision: Precision = Field(
        "auto", description="Compute precision [auto: bf16 where the hardware has it, else fp32]"
    )
    long_text: LongText = Field(
        "truncate",
        description="Texts longer than the run's max length: truncate (the run's truncation) or chunks (every token, "
        "in overlapping windows whose logits are averaged)",
    )
    stride: int | None = Field(
        None, gt=0, description="With --long-text chunks: tokens shared by consecutive windows [a quarter of one]"
    )
    device: str | None = Field(None, description="torch device for a run, e.g. cuda:1 [the GPU if any, else cpu]")
    threads: int | None = Field(None, gt=0, description="CPU threads of an export's runtime [all cores]")
    engine: Engine = Field(
        "auto",
        description="What runs a run's model: torch, or the run compiled once for openvino / onnx and kept in the run "
        "folder [auto: openvino on CPUs where it is installed (the fastest faithful engine measured), else torch; "
        "torch on GPUs and for several runs on one base]",
    )
    min_confidence: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Mark answers under this probability abstained (best guess kept beside the mark); multi-label: "
        "tags between 1-P and P are uncertain [answer everything]",
    )
    max_interval: float | None = Field(
        None, gt=0, description="Regression: mark answers whose interval is wider than this abstained"
    )


class EvalOptions(_Options):
    """Which labelled rows `evaluate` scores, and how it reads them."""

    split: str | None = Field(None, description="Split to evaluate [test, else validation, else train]")
    text_column: str | None = Field(None, description="Column holding the text [the run's --text-column, else text]")
    label_column: str | None = Field(
        None, description="Column holding the label [the run's --label-column, else label]"
    )
    label_columns: list[str] | None = Field(None, description="Multi-label: 0/1 columns, one per tag [the run's]")
    label_separator: str | None = Field(None, description="Multi-label: split string labels on this [the run's]")
    max_samples: int | None = Field(None, gt=0, description="Stratified, seeded subsample of this many rows")
    batch_size: int | None = Field(
        None, gt=0, description="Texts per forward pass [16 on a CPU; on a GPU, from its free memory, 64 to 1024]"
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed of the subsample")


class FileOptions(_Options):
    """How `predict --input` reads, predicts and writes a file (or, with the ray runner, a folder of files)."""

    text_column: str | None = Field(
        None, description="Column of --input holding the text [the run's --text-column, else text]"
    )
    input_format: InputFormat | None = Field(None, description="Format of --input [from its extension; stdin: txt]")
    output_format: OutputFormat | None = Field(
        None, description="Format of --output [from its extension; stdout: jsonl; --runner ray: parquet]",
    )  # fmt: skip
    chunk_size: int = Field(2048, gt=0, description="Rows read, predicted and written at a time")
    batch_size: int | None = Field(
        None, gt=0, description="Texts per forward pass [16 on a CPU; on a GPU, from its free memory, 64 to 1024]"
    )
    workers: int | None = Field(
        None,
        gt=0,
        description="Processes (Ray actors with --runner ray) that predict chunks in parallel, each with its share "
        "of the CPU cores or one GPU [1; --runner ray: one per GPU, else one per node]",
    )
    overwrite: bool = Field(False, description="Replace an existing --output")
    progress: bool = Field(True, description="A progress bar on stderr, where it is a terminal or a notebook")


class RunnerOptions(_Options):
    """Where `predict --input` runs: this machine's processes, or a Ray cluster."""

    runner: Literal["local", "ray"] = Field(
        "local",
        description="With --input: local (this machine's processes) or ray (Ray Data: --input may be a folder or "
        "glob, --output is a folder of files with input_file / input_row columns)",
    )
    ray_address: str | None = Field(
        None, description="With --runner ray: a running Ray cluster (e.g. auto, ray://head:10001) [a local Ray]"
    )


class ExplainOptions(_Options):
    """Which words drove each answer (inference/explain.py): `predict --explain`, the server's /explain."""

    explain: bool = Field(False, description="Also say which words pushed each answer up or down (needs Captum)")
    explain_method: Literal["integrated-gradients", "occlusion"] = Field(
        "integrated-gradients",
        description="integrated-gradients (Captum, 32 steps) or occlusion (one forward pass per word)",
    )
    explain_label: str | None = Field(
        None, description="The label or tag to explain [the predicted one; regression: the value]"
    )


class ExportOptions(_Options):
    """What `export` writes: which engine's model file, and whether its weights are int8."""

    format: str = Field(
        "transformers",
        description="The engine to export for: transformers (safetensors, for pipeline()), onnx (ONNX Runtime) or "
        "openvino (OpenVINO IR, the fastest measured on every CPU class, AMD's too); predict/serve/evaluate open "
        "onnx and openvino folders without torch",
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="With --format onnx or openvino: int8 (onnx: dynamic, no calibration; openvino: static, "
        "calibrated on texts)",
    )
    calibration_data: str | None = Field(
        None,
        description="With --format openvino --quantize int8: a file of texts (the run's --text-column) to calibrate "
        "on [the run's training data]",
    )
    calibration_samples: int = Field(256, gt=0, description="Texts to calibrate int8 on")
    int8_scope: Literal["all", "no-output-projections"] = Field(
        "all",
        description="With --format openvino --quantize int8: which matmuls go int8: all, or all but each layer's "
        "attention and feed-forward output projections (kept in float: closer to fp32, slower; "
        "docs/benchmarks/cpu-classes.md)",
    )
    overwrite: bool = Field(False, description="Replace a non-empty OUT_DIR")


class TuneOptions(_Options):
    """How `tune` searches: the space, the budget, and where the study lives."""

    search: list[str] | None = Field(
        None,
        description="Settings to vary: NAME=LOW:HIGH[:log] (a range) or NAME=A,B,C (choices), e.g. "
        '"learning_rate=1e-4:3e-3:log" "lora_r=4,8,16" [learning_rate, lora_r, lora_alpha, lora_dropout]',
    )
    trials: int = Field(20, gt=0, description="Finished trials the study should hold")
    timeout: float | None = Field(None, gt=0, description="Stop starting trials after this many seconds")
    storage: str | None = Field(
        None, description="Optuna storage URL shared by several tune processes [OUTPUT_DIR/study.db]"
    )
    study_name: str = Field("lora-sentiment", description="The study's name in --storage")
    keep: Literal["best", "all"] = Field("best", description="Trial runs kept at the end")


class FoldRunOptions(RunnerOptions):
    """Where the folds of a cross-fitting train: one after another here, in worker processes, or on Ray."""

    workers: int | None = Field(
        None,
        gt=0,
        description="Folds trained at once: worker processes here (each a share of the cores, or a GPU each), Ray "
        "tasks with --runner ray [1; ray: one per GPU, else one per node]",
    )
    runner: Literal["local", "ray"] = Field(
        "local",
        description="local (this machine) or ray (each fold a Ray task on the cluster at --ray-address, trained in "
        "a scratch folder of its node; its scores come back here, its run is not kept)",
    )


class AuditOptions(FoldRunOptions):
    """How `audit` scores the training texts out of sample and what it writes besides its report."""

    folds: int = Field(5, ge=2, le=20, description="Folds of the cross-fitting: each text is scored by a model trained "
                       "on the others")  # fmt: skip
    scorer: Literal["auto", "lora+tfidf", "lora", "tfidf"] = Field(
        "auto",
        description="What scores each fold: lora (a real train run per fold, with the train flags given), tfidf (the "
        "TF-IDF baseline: seconds, a cheap first pass) or lora+tfidf (the mean of both); auto: lora+tfidf for "
        "single-label data, where it found wrong labels best, lora for the others",
    )
    repeats: int = Field(
        1,
        ge=1,
        le=10,
        description="Cross-fittings, each with its own folds and seed (--seed, then --seed + 1, ...), whose scores are "
        "averaged: steadier scores for that many times the trainings; raising it on a finished audit trains only the "
        "new ones",
    )
    near_duplicates: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Jaccard similarity of word shingles from which two texts count as near-duplicates (1: exact "
        "duplicates only)",
    )
    write_clean: str | None = Field(
        None,
        description="Also write the audited training rows without the flagged ones here (.csv, .tsv, .jsonl or "
        ".parquet), for a second train",
    )
    relabel: bool = Field(
        False, description="With --write-clean: give label issues the suggested label instead of dropping them"
    )


for _command, _options in (("tune", TuneOptions), ("audit", AuditOptions), ("export", ExportOptions)):
    note_options_of(_command, _options.model_fields)
