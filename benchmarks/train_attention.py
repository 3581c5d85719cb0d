"""Training choices on this CPU, per precision: eager attention against SDPA by default, or any `--variant`s
(TrainConfig fields; `threads` sets torch's thread count). Each variant is the model `train` builds over the same
real reviews (length-grouped batches, or random ones with `group_by_length: false`), forward + backward + AdamW,
the variants taking turns round by round in one process, freed memory kept between steps as `train` keeps it.

    python benchmarks/train_attention.py --model "$MINILM" --precision bf16 \
        --output benchmarks/results/train-attention-amx-cpu-2026-12-06.json
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/train_attention.py --model "$MINILM" --precision fp32 ...
    python benchmarks/train_attention.py ... --variant 'defaults={}' --variant 'kept={"base_dropout": null}'

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
from step_args import step_parser

from lora_sentiment.config import TrainConfig
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.modeling.model import setup_model
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training.memory import Allocator


def prepared(args: argparse.Namespace, variant: dict, texts: list[str]) -> tuple:
    torch.manual_seed(0)
    settings = {k: v for k, v in variant.items() if k != "threads"}
    given = {"model": args.model, "max_length": args.max_length, "batch_size": args.batch_size}
    config = TrainConfig(**given | settings)
    setup = setup_model(config, LabelSpace("single-label", ["Negative", "Positive"]), args.precision, log=print)
    encoded = setup.tokenizer(texts, truncation=True, max_length=args.max_length)
    order = np.argsort([len(ids) for ids in encoded["input_ids"]])
    if not config.group_by_length:
        order = np.random.default_rng(0).permutation(len(order))
    batches = []
    for first in range(0, len(order), config.batch_size):
        rows = [{k: encoded[k][i] for k in encoded} for i in order[first : first + config.batch_size]]
        batch = setup.tokenizer.pad(rows, return_tensors="pt")
        batch["labels"] = torch.randint(0, 2, (len(rows),))
        batches.append(batch)
    model = setup.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    return model, optimizer, batches


def main() -> None:
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reviews", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help='e.g. \'eager={"attention": "eager"}\' (default: eager and sdpa)',
    )
    parser.add_argument("--output")
    args = parser.parse_args()
    allocator = Allocator.for_this_process()
    if allocator is not None:
        allocator.keep_freed()
    texts = pd.read_parquet(args.data)["text"].sample(args.reviews, random_state=1).tolist()
    variants = dict(v.split("=", 1) for v in args.variant) or {
        "eager": '{"attention": "eager"}',
        "sdpa": '{"attention": "sdpa"}',
    }
    variants = {name: json.loads(given) for name, given in variants.items()}
    runs = {name: prepared(args, variant, texts) for name, variant in variants.items()}
    threads = torch.get_num_threads()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    for model, optimizer, batches in runs.values():
        for batch in batches[:2]:  # warm-up: oneDNN picks its kernels on the first shapes
            train_step(model, optimizer, autocast, batch)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (model, optimizer, batches) in runs.items():
            torch.set_num_threads(variants[name].get("threads", threads))
            start = time.perf_counter()
            for batch in batches:
                train_step(model, optimizer, autocast, batch)
            seconds[name].append(round(time.perf_counter() - start, 3))
    torch.set_num_threads(threads)
    results = {"cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d"), "settings": vars(args),
               "threads": threads, "variants": variants, "seconds per pass over the reviews": seconds}  # fmt: skip
    print(json.dumps(results, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
