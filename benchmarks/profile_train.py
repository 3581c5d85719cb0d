"""Where a training step's time goes on this CPU: the default model (LoRA as `train` builds it) on real reviews,
forward + backward + AdamW, under torch.profiler, per precision and per variant, side by side in one run.

    python benchmarks/profile_train.py --model "$MINILM" --data ../shared/data/imdb-sample/train.parquet \
        --precision fp32 bf16 --output benchmarks/results/profile-train-cpu-2026-12-02.json

Variants: the defaults; LoRA dropout off (its masks are a mask per adapted input per step); eager attention
instead of SDPA. Prints the top operators by self CPU time and each variant's seconds per step."""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
import torch

from lora_sentiment.config import TrainConfig
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.modeling.model import setup_model
from lora_sentiment.problems.space import LabelSpace

VARIANTS = {"defaults": {}, "lora dropout 0": {"lora_dropout": 0.0}, "eager attention": {"attention": "eager"}}


def batches(tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[dict]:
    """Length-grouped batches of real reviews, as `train`'s sampler makes them."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    order = np.argsort([len(ids) for ids in encoded["input_ids"]])
    out = []
    for start in range(0, len(order) - batch_size + 1, batch_size):
        rows = [{k: encoded[k][i] for k in encoded} for i in order[start : start + batch_size]]
        batch = tokenizer.pad(rows, return_tensors="pt")
        batch["labels"] = torch.randint(0, 2, (batch_size,))
        out.append(batch)
    return out


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, autocast: Any, batch: dict) -> None:
    """One optimizer step as the Trainer takes it: forward, backward, AdamW, the gradients cleared."""
    with autocast:
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def measure(args: argparse.Namespace, precision: str, variant: dict, texts: list[str]) -> dict:
    config = TrainConfig(model=args.model, max_length=args.max_length, batch_size=args.batch_size, **variant)
    setup = setup_model(config, LabelSpace("single-label", ["Negative", "Positive"]), precision, log=lambda _: None)
    model = setup.model
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    steps = batches(setup.tokenizer, texts, args.batch_size, args.max_length)[: args.steps + 2]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step(batch: dict) -> None:
        train_step(model, optimizer, autocast, batch)

    for batch in steps[:2]:  # warm-up: oneDNN picks its kernels on the first shapes
        step(batch)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        start = time.perf_counter()
        for batch in steps[2:]:
            step(batch)
        seconds = (time.perf_counter() - start) / len(steps[2:])
    table = profile.key_averages()
    total = sum(e.self_cpu_time_total for e in table)
    top = sorted(table, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]
    return {
        "seconds_per_step": seconds,
        "tokens_per_step": float(np.mean([b["attention_mask"].sum().item() for b in steps[2:]])),
        "top_ops": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="a Parquet file with a text column")
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--output")
    args = parser.parse_args()
    torch.manual_seed(0)
    texts = pd.read_parquet(args.data)["text"].sample(n=args.batch_size * (args.steps + 2) * 4, random_state=0)
    report = {"cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "settings": vars(args), "results": {}}  # fmt: skip
    for precision in args.precision:
        for name, variant in VARIANTS.items():
            result = measure(args, precision, variant, texts.tolist())
            report["results"][f"{precision} / {name}"] = result
            print(f"\n{precision} / {name}: {result['seconds_per_step']:.2f} s per step "
                  f"({result['tokens_per_step']:.0f} real tokens)")  # fmt: skip
            for op in result["top_ops"]:
                print(f"  {op['share']:6.1%}  {op['calls']:6d}  {op['op']}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
