"""`lora-sentiment bench`: the tutorial's recipe and this project's default paths, side by side in one run.

Each phase runs in a fresh process so its peak RSS is its own. Throughput counts real (non-padding)
tokens; MFU divides the analytic FLOPs of those tokens by time and by the matmul peak measured in the
same run."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import AutoConfig, AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

from ..config import TrainConfig
from ..errors import UserError, first_line
from ..measure import peak_rss_mb
from ..modeling.device import encoder_dims, synchronize
from ..options import LoadOptions
from ..training.recipe import train
from .harness import in_fresh_process, machine_description, phase_peak, phase_startup, quiet
from .options import BenchOptions
from .tutorial import load_like_tutorial, predict_like_tutorial, process_like_tutorial, tutorial_settings

QUICK = dict(train_samples=400, eval_samples=300, epochs=1.0, shaped_train_samples=64, shaped_predict_samples=128)
FULL = dict(train_samples=2000, eval_samples=1000, epochs=1.0, shaped_train_samples=256, shaped_predict_samples=512)


# ------------------------------------------------------------------------------------------------ FLOPs


def forward_flops(model_config: Any, lengths: Sequence[int]) -> float:
    """Matmul FLOPs of one forward pass over sequences of these (unpadded) lengths."""
    return forward_flops_from_sums(model_config, sum(lengths), sum(s * s for s in lengths))


def forward_flops_from_sums(model_config: Any, total_tokens: float, total_squared: float) -> float:
    """Per layer and sequence of s tokens: Q, K, V and output projections 8·s·h², the feed-forward 4·s·h·f,
    attention scores and their weighted sum 4·s²·h. Embedding lookups, norms and the head are left out,
    so the sums of s and s² over the sequences are all it takes."""
    layers, hidden, ffn = encoder_dims(model_config)
    return float(layers * ((8 * hidden * hidden + 4 * hidden * ffn) * total_tokens + 4 * hidden * total_squared))


# LoRA training computes the forward pass and the gradients with respect to activations (the frozen weights
# need none): about twice the forward FLOPs, not the 3x of full fine-tuning.
LORA_TRAINING_FLOPS_PER_FORWARD = 2.0


# ---------------------------------------------------------------------------------------------- phases


def phase_train(config_values: dict[str, Any], like_tutorial: bool = False) -> dict[str, Any]:
    quiet()
    if like_tutorial:
        process_like_tutorial()

    config = TrainConfig(**config_values)
    result = train(config, log=lambda _: None)
    stats = result.metrics["train"]
    flops_per_epoch = LORA_TRAINING_FLOPS_PER_FORWARD * forward_flops_from_sums(
        AutoConfig.from_pretrained(config.model), stats["real_tokens_per_epoch"], stats["squared_lengths_per_epoch"]
    )
    return {
        "samples_per_second": stats["samples_per_second"],
        "real_tokens_per_second": stats["real_tokens_per_second"],
        "precision": stats["precision"],
        "accuracy": result.metrics["final"]["accuracy"],
        "step_seconds": stats["step_seconds"],
        "train_flops_per_second": flops_per_epoch * stats["epochs"] / stats["step_seconds"],
        "peak_rss_mb": peak_rss_mb(),
        "run_dir": str(result.output_dir),
    }


def phase_predict_baseline(
    run_dir: str, base_model: str, texts: list[str], max_length: int, num_labels: int = 2
) -> dict[str, Any]:
    """As the tutorial predicts (tutorial.py), timed."""
    quiet()
    model, tokenizer = load_like_tutorial(run_dir, base_model, num_labels)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    predicted, seconds = predict_like_tutorial(model, tokenizer, texts, max_length)
    return _predict_stats(model.config, lengths, seconds, "fp32")


def phase_predict_ours(run_dir: str, texts: list[str]) -> dict[str, Any]:
    """As `predict RUN` runs by default once the run's texts have repaid its compile (`--engine auto`: on a CPU
    with OpenVINO installed, the run compiled once for it, int8 where its check kept it or this many texts repay
    the check); the compile is timed apart, the loop after a warm-up."""
    quiet()
    from ..opening import open_predictor, resolve_engine_target

    start = time.perf_counter()
    resolve_engine_target(run_dir, LoadOptions(), log=lambda _: None)  # compiled now, as after 4,000 texts
    classifier = open_predictor(run_dir, expected_texts=len(texts))
    opened = time.perf_counter() - start
    lengths = [len(ids) for ids in classifier.encoder(texts)["input_ids"]]
    classifier.predict_proba(texts[:32])  # warm-up: first-call allocations are not throughput
    start = time.perf_counter()
    classifier.predict_proba(texts)
    synchronize()
    seconds = time.perf_counter() - start
    model_config = AutoConfig.from_pretrained(classifier.run_config.model)
    stats = _predict_stats(model_config, lengths, seconds, classifier.precision)
    return {**stats, "device": classifier.device, "open_seconds": opened}


def _predict_stats(model_config: Any, lengths: list[int], seconds: float, precision: str) -> dict[str, Any]:
    return {
        "samples_per_second": len(lengths) / seconds,
        "real_tokens_per_second": sum(lengths) / seconds,
        "flops_per_second": forward_flops(model_config, lengths) / seconds,
        "mean_tokens": sum(lengths) / len(lengths),
        "precision": precision,
        "peak_rss_mb": peak_rss_mb(),
    }


# ------------------------------------------------------------------------------------------- the bench


def make_shaped_model(directory: Path, tokenizer_source: str) -> str:
    """distilbert-base-uncased's architecture (6 layers, 768 hidden, 12 heads) with random weights."""
    path = directory / "distilbert-shaped"
    DistilBertForSequenceClassification(DistilBertConfig()).save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(path)
    return str(path)


def check_bench(options: BenchOptions) -> tuple[str, tuple[Path, Path]]:
    """`bench`'s settings, before anything is measured: the model to measure and the two data files."""
    if options.shaped_only and not options.distilbert_shaped:
        raise UserError("nothing to measure: --shaped-only and --no-distilbert-shaped exclude each other")
    model = options.model or options.tokenizer
    if model is None:
        raise UserError("bench needs --model (and --tokenizer for the DistilBERT-shaped model, if it differs)")
    files = (Path(options.data) / "train.parquet", Path(options.data) / "validation.parquet")
    if not all(f.is_file() for f in files):
        raise UserError(
            f"{options.data} needs train.parquet and validation.parquet (text and label columns); set --data"
        )
    for file in files:
        _check_bench_file(file)
    return model, files


def _check_bench_file(file: Path) -> None:
    """Readable Parquet with text and label columns and rows to sample: found now, not minutes into measuring."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(file).metadata
    except Exception as exc:  # pyarrow's ArrowInvalid, OSError...
        raise UserError(
            f"could not read {file} as Parquet: {first_line(exc)} (give --data a folder of Parquet files)"
        ) from None
    columns = set(meta.schema.names)
    if not {"text", "label"} <= columns:
        raise UserError(f"{file} needs text and label columns; its columns: {', '.join(sorted(columns))}")
    if meta.num_rows < 2:
        raise UserError(f"{file} has {meta.num_rows} row(s): bench needs reviews to train on and predict")


def run_bench(options: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`options.data` is a folder with train.parquet and validation.parquet; `options.model` a trained-weights
    encoder (its tokenizer also serves the DistilBERT-shaped model unless `options.tokenizer` names another)."""
    quiet()
    given = {k: getattr(options, k) for k in FULL if getattr(options, k) is not None}
    sizes = dict(QUICK if options.quick else FULL, **given)
    model, files = check_bench(options)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report: dict[str, Any] = {"machine": machine_description(device), "sizes": sizes,
                              "max_length": options.max_length, "model": model}  # fmt: skip
    log("Measuring peak matmul throughput...")
    report["peak_flops"] = in_fresh_process(phase_peak, device)
    report["startup"] = phase_startup()
    validation = pd.read_parquet(files[1])
    texts = validation.sample(n=min(sizes["eval_samples"], 1000, len(validation)), random_state=0)["text"].tolist()
    with tempfile.TemporaryDirectory(prefix="lora-sentiment-bench-") as scratch:
        workloads = [] if options.shaped_only else [("minilm" if "minilm" in model.lower() else Path(model).name,
                                                      model, True)]  # fmt: skip
        if options.distilbert_shaped:
            # distilbert-base-uncased's vocabulary is the uncased WordPiece one MiniLM (and --tokenizer) carry
            workloads.append(("distilbert-shaped", make_shaped_model(Path(scratch), options.tokenizer or model), False))
        for name, model_path, with_accuracy in workloads:
            job = _Workload(name, model_path, with_accuracy, tuple(map(str, files)), sizes, options.max_length)
            report[name] = _bench_workload(job, texts, scratch, log)
            report[name]["mfu"] = _mfu(report[name], report["peak_flops"])
    return report


@dataclass
class _Workload:
    name: str
    model_path: str
    with_accuracy: bool
    files: tuple[str, ...]  # train and validation
    sizes: dict[str, Any]
    max_length: int


def _bench_workload(job: _Workload, texts: list[str], scratch: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Both recipes' training and prediction on one model, each phase in its own process."""
    name, model_path, with_accuracy, files, sizes, max_length = (
        job.name,
        job.model_path,
        job.with_accuracy,
        job.files,
        job.sizes,
        job.max_length,
    )
    model_type = AutoConfig.from_pretrained(model_path).model_type
    n_train = sizes["train_samples"] if with_accuracy else sizes["shaped_train_samples"]
    n_predict = len(texts) if with_accuracy else sizes["shaped_predict_samples"]
    settings = dict(
        model=model_path, data=files[0], eval_data=files[1], max_train_samples=n_train,
        max_eval_samples=sizes["eval_samples"] if with_accuracy else 32, max_length=max_length, epochs=sizes["epochs"],
        examples=["It was good."],
    )  # fmt: skip
    entry: dict[str, Any] = {}
    for kind, values in (("baseline", tutorial_settings(settings, model_type)), ("ours", dict(settings))):
        log(f"[{name}] training: {kind}...")
        values["output_dir"] = str(Path(scratch) / f"{name}-{kind}")
        entry[f"train_{kind}"] = in_fresh_process(phase_train, values, kind == "baseline")
    predict_texts = (texts * (n_predict // len(texts) + 1))[:n_predict]
    log(f"[{name}] predicting: baseline...")
    baseline_run = entry["train_baseline"]["run_dir"]
    entry["predict_baseline"] = in_fresh_process(
        phase_predict_baseline, baseline_run, model_path, predict_texts, max_length
    )
    log(f"[{name}] predicting: ours...")
    entry["predict_ours"] = in_fresh_process(phase_predict_ours, entry["train_ours"]["run_dir"], predict_texts)
    ratio = lambda stage, key: entry[f"{stage}_ours"][key] / entry[f"{stage}_baseline"][key]  # noqa: E731
    entry["ratios"] = {
        "train_samples_per_second": ratio("train", "samples_per_second"),
        "train_real_tokens_per_second": ratio("train", "real_tokens_per_second"),
        "predict_samples_per_second": ratio("predict", "samples_per_second"),
    }
    if with_accuracy:
        entry["accuracy_delta_points"] = 100 * (entry["train_ours"]["accuracy"] - entry["train_baseline"]["accuracy"])
    for phase in ("train_baseline", "train_ours"):
        entry[phase].pop("run_dir")
    return entry


# Precisions measured against the bf16 peak; every other (fp32, int8) against the fp32 one.
HALF = ("bf16", "fp16")


def _mfu(entry: dict[str, Any], peak: dict[str, float]) -> dict[str, float]:
    """Each path's FLOP/s over the peak of the precision it ran in (the baseline: fp32)."""
    peak_predict = peak.get("bf16") if entry["predict_ours"]["precision"] in HALF else peak["fp32"]
    peak_train = peak.get("bf16") if entry["train_ours"]["precision"] in HALF else peak["fp32"]
    return {
        "predict_ours": entry["predict_ours"]["flops_per_second"] / peak_predict,
        "predict_baseline_vs_fp32_peak": entry["predict_baseline"]["flops_per_second"] / peak["fp32"],
        "train_ours": entry["train_ours"]["train_flops_per_second"] / peak_train,
        "train_baseline_vs_fp32_peak": entry["train_baseline"]["train_flops_per_second"] / peak["fp32"],
    }


def format_report(report: dict[str, Any]) -> str:
    peak, machine = report["peak_flops"], report["machine"]
    lines = [
        f"machine: {machine.get('gpu') or machine['cpu']} ({machine['cores']} cores), torch {machine['torch']}",
        f"CPU class: {machine.get('cpu_class', '?')} (flags: {' '.join(machine.get('cpu_flags', []))})",
        "peak matmul: " + ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in peak.items()),
        f"start-up: CLI --help {report['startup']['cli_help_s']:.2f} s, import {report['startup']['import_s']:.2f} s",
        f"max length {report['max_length']} tokens; sizes {json.dumps(report['sizes'])}",
    ]
    for name, entry in report.items():
        if not isinstance(entry, dict) or "ratios" not in entry:
            continue
        lines.append(f"\n== {name}")
        lines.append(f"{'':24}{'baseline':>14}{'ours':>14}{'ours/baseline':>16}")
        rows = [
            ("train samples/s", "train", "samples_per_second", "train_samples_per_second"),
            ("train real tokens/s", "train", "real_tokens_per_second", "train_real_tokens_per_second"),
            ("predict samples/s", "predict", "samples_per_second", "predict_samples_per_second"),
            ("predict real tokens/s", "predict", "real_tokens_per_second", None),
            ("train peak RSS MB", "train", "peak_rss_mb", None),
            ("predict peak RSS MB", "predict", "peak_rss_mb", None),
        ]
        for label, stage, key, ratio in rows:
            b, o = entry[f"{stage}_baseline"][key], entry[f"{stage}_ours"][key]
            times = f"{entry['ratios'][ratio] if ratio else o / b:.2f}x"
            lines.append(f"{label:24}{b:>14,.1f}{o:>14,.1f}{times:>16}")
        if "accuracy_delta_points" in entry:
            lines.append(
                f"{'accuracy':24}{entry['train_baseline']['accuracy']:>14.4f}{entry['train_ours']['accuracy']:>14.4f}{entry['accuracy_delta_points']:>+15.1f}pt"
            )
        mfu, ours = entry["mfu"], entry["predict_ours"]
        if "device" in ours:
            lines.append(f"predict ours: the default engine, {ours['device']} in {ours['precision']}; opening it took "
                         f"{ours['open_seconds']:.1f} s (a first call compiles the run)")  # fmt: skip
        peak_name = ours["precision"] if ours["precision"] in HALF else "fp32"
        lines.append(
            f"MFU ours: predict {mfu['predict_ours']:.1%}, train {mfu['train_ours']:.1%} "
            f"(of the {peak_name} peak); baseline: predict "
            f"{mfu['predict_baseline_vs_fp32_peak']:.1%}, train {mfu['train_baseline_vs_fp32_peak']:.1%} "
            "(of the fp32 peak)"
        )
    return "\n".join(lines)
