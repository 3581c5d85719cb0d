"""Texts per forward pass without gradients on this CPU: how long evaluation (the model as `train` evaluates it,
LoRA unmerged) and prediction (a run's torch predictor) take per batch size, side by side in one process.

    python benchmarks/cpu_batches.py --model "$MINILM" --run RUN --precision fp32 \
        --output benchmarks/results/cpu-batches-amx-cpu-2026-12-06.json
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/cpu_batches.py ...   # a class without bf16 units

Evaluation runs SDPA attention, as `train` evaluates, timed on glibc's allocator settings (`train` evaluates on
them) and with freed memory kept (training/memory.py), to tell the caches' share from the page faults'. Reviews are
sorted by length, as `train`'s evaluation split and `predict` sort them."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lora_sentiment.config import TrainConfig
from lora_sentiment.data.encoding import padded_batch
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.modeling.model import setup_model
from lora_sentiment.opening import open_predictor
from lora_sentiment.options import LoadOptions
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training.memory import Allocator

SAMPLE = Path(__file__).resolve().parents[1] / "../shared/data/imdb-sample/validation.parquet"


def evaluation_seconds(args: argparse.Namespace, texts: list[str], sizes: list[int]) -> dict[int, list[float]]:
    config = TrainConfig(model=args.model, max_length=args.max_length, attention="sdpa")  # as `train` evaluates
    setup = setup_model(config, LabelSpace("single-label", ["Negative", "Positive"]), args.precision, log=print)
    model = setup.model.eval()
    tokenizer = setup.tokenizer
    encoded = dict(tokenizer(texts, truncation=True, max_length=args.max_length))
    order = np.argsort([len(ids) for ids in encoded["input_ids"]])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()

    def evaluate(size: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            for first in range(0, len(order), size):
                batch = padded_batch(encoded, order[first : first + size], tokenizer.pad_token_id, False, None)
                model(**{key: torch.from_numpy(rows) for key, rows in batch.items()})
        return time.perf_counter() - start

    evaluate(16)  # warm-up: oneDNN picks its kernels on the first shapes
    return {size: [evaluate(size) for _ in range(args.rounds)] for size in sizes}


def prediction_seconds(args: argparse.Namespace, texts: list[str], sizes: list[int]) -> dict[int, list[float]]:
    predictor = open_predictor(args.run, LoadOptions(engine="torch", precision=args.precision))
    predictor.predict_scores(texts[:32], 16)
    seconds: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.rounds):  # interleaved: a slow spell of the host falls on every size alike
        for size in sizes:
            start = time.perf_counter()
            predictor.predict_scores(texts, size)
            seconds[size].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--run", help="a trained run folder, for the prediction half")
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--eval-rows", type=int, default=200)
    parser.add_argument("--predict-rows", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output")
    args = parser.parse_args()
    texts = pd.read_parquet(args.data).sample(frac=1.0, random_state=0)["text"].tolist()
    results: dict = {"cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d"), "settings": vars(args)}
    allocator = Allocator.for_this_process()
    results["evaluation, glibc's settings"] = evaluation_seconds(args, texts[: args.eval_rows], args.sizes)
    if allocator is not None:
        allocator.keep_freed()
        results["evaluation, freed memory kept"] = evaluation_seconds(args, texts[: args.eval_rows], args.sizes)
        allocator.restore()
    if args.run:
        results["prediction (torch)"] = prediction_seconds(args, texts[: args.predict_rows], args.sizes)
    for name, seconds in results.items():
        if isinstance(seconds, dict) and name != "settings":
            print(name + ":", "  ".join(f"{size}: {min(s):.2f} s" for size, s in seconds.items()), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
