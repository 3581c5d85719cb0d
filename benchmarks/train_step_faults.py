"""What the allocator costs a training step: seconds, page faults and peak memory per step of the default model
(LoRA as `train` builds it) on real reviews, forward + backward + AdamW, per memory policy, each policy in a fresh
process (the allocator's settings are process-wide), one after the other.

    python benchmarks/train_step_faults.py --model "$MINILM" --precision bf16 --rounds 2
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/train_step_faults.py --model "$MINILM" --precision fp32

Policies (training/memory.py): `trim-every-step` (glibc's settings, malloc_trim(0) after every step: the default
from 2026-12-02 to 2026-12-06), `glibc` (glibc's settings, as a plain Trainer has them), `default` (freed blocks
kept, trimmed past the budget: HEADROOM times the first step's peak, at least FLOOR). Batches are length-grouped,
then shuffled, the longest first, as `--group-by-length` makes them."""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

from step_args import step_parser

POLICIES = ("trim-every-step", "glibc", "default")


def child(args: argparse.Namespace) -> dict:
    import pandas as pd
    import torch
    from profile_train import batches, train_step

    from lora_sentiment.config import TrainConfig
    from lora_sentiment.measure import peak_rss_mb
    from lora_sentiment.modeling.model import setup_model
    from lora_sentiment.problems.space import LabelSpace
    from lora_sentiment.training import memory

    allocator = memory.Allocator.for_this_process()
    kept = memory.KeepFreedMemory(allocator, args.headroom) if args.policy == "default" else None
    texts = pd.read_parquet(args.data)["text"].tolist()
    torch.manual_seed(0)
    config = TrainConfig(model=args.model, max_length=args.max_length, batch_size=16)
    setup = setup_model(config, LabelSpace("single-label", ["Negative", "Positive"]), args.precision, lambda _: None)
    model = setup.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    steps = batches(setup.tokenizer, texts, 16, args.max_length)
    random.Random(0).shuffle(steps)
    steps = steps[: args.steps + 2]
    longest = max(range(len(steps)), key=lambda i: steps[i]["input_ids"].shape[1])
    steps.insert(0, steps.pop(longest))  # first, as transformers' LengthGroupedSampler puts it
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    steps_only = SimpleNamespace(should_evaluate=False)  # the Trainer's control: no evaluation in this loop
    if kept is not None:
        kept.on_train_begin(None, None, steps_only)

    def step(batch: dict) -> None:
        train_step(model, optimizer, autocast, batch)
        if kept is not None:
            kept.on_step_end(None, None, steps_only)
        elif args.policy == "trim-every-step":
            allocator.trim(0)

    for batch in steps[:2]:
        step(batch)
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for batch in steps[2:]:
        step(batch)
    n = len(steps) - 2
    return {"policy": args.policy, "seconds_per_step": round((time.perf_counter() - start) / n, 3),
            "faults_per_step": round((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n),
            "peak_rss_mb": round(peak_rss_mb()), "trims": kept.trims if kept is not None else None,
            "budget_mb": round(kept.budget / 2**20) if kept is not None else None}  # fmt: skip


def main() -> None:
    parser = step_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--headroom", type=float, default=1.2, help="the default policy's budget over the first peak")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--policy", choices=POLICIES, help=argparse.SUPPRESS)  # the child's
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.policy:
        print("RESULT", json.dumps(child(args)))
        return
    from lora_sentiment.modeling.cpu import this_cpu

    report = {"cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d"), "settings": vars(args), "rows": []}
    for _ in range(args.rounds):
        for policy in args.policies:
            done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--policy", policy], capture_output=True,
                                  text=True, check=True)  # fmt: skip
            row = json.loads(done.stdout.rsplit("RESULT", 1)[1])
            report["rows"].append(row)
            print(row, flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
