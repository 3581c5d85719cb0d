"""Eager attention against SDPA for training steps on this CPU, per precision: the default model (LoRA as `train`
builds it) over the same length-grouped batches of real reviews, forward + backward + AdamW, the two models taking
turns round by round in one process, freed memory kept between steps as `train` keeps it.

    python benchmarks/train_attention.py --model "$MINILM" --precision bf16 \
        --output benchmarks/results/train-attention-amx-cpu-2026-12-06.json
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/train_attention.py --model "$MINILM" --precision fp32 ...

`--attention auto` follows what this measures (modeling/device.py's resolve_attention)."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from profile_train import train_step

from lora_sentiment.config import TrainConfig
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.modeling.model import setup_model
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training.memory import Allocator

SAMPLE = Path(__file__).resolve().parents[1] / "../shared/data/imdb-sample/train.parquet"


def prepared(args: argparse.Namespace, attention: str, texts: list[str]) -> tuple:
    torch.manual_seed(0)
    config = TrainConfig(model=args.model, max_length=args.max_length, attention=attention)
    setup = setup_model(config, LabelSpace("single-label", ["Negative", "Positive"]), args.precision, log=print)
    encoded = setup.tokenizer(texts, truncation=True, max_length=args.max_length)
    order = np.argsort([len(ids) for ids in encoded["input_ids"]])
    batches = []
    for first in range(0, len(order), args.batch_size):
        rows = [{k: encoded[k][i] for k in encoded} for i in order[first : first + args.batch_size]]
        batch = setup.tokenizer.pad(rows, return_tensors="pt")
        batch["labels"] = torch.randint(0, 2, (len(rows),))
        batches.append(batch)
    model = setup.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    return model, optimizer, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reviews", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output")
    args = parser.parse_args()
    allocator = Allocator.for_this_process()
    if allocator is not None:
        allocator.keep_freed()
    texts = pd.read_parquet(args.data)["text"].sample(args.reviews, random_state=1).tolist()
    runs = {attention: prepared(args, attention, texts) for attention in ("eager", "sdpa")}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    for model, optimizer, batches in runs.values():
        for batch in batches[:2]:  # warm-up: oneDNN picks its kernels on the first shapes
            train_step(model, optimizer, autocast, batch)
    seconds: dict[str, list[float]] = {attention: [] for attention in runs}
    for _ in range(args.rounds):
        for attention, (model, optimizer, batches) in runs.items():
            start = time.perf_counter()
            for batch in batches:
                train_step(model, optimizer, autocast, batch)
            seconds[attention].append(round(time.perf_counter() - start, 3))
    results = {"cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d"), "settings": vars(args),
               "seconds per pass over the reviews": seconds}  # fmt: skip
    print(json.dumps(results, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
