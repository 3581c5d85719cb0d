"""One process with batch 16 against `torchrun --nproc-per-node 2` with batch 8 per process, with default
settings, over several seeds: is the gap between them seed-to-seed spread or systematic?

    python benchmarks/distributed_parity.py --model "$MINILM" --data ../shared/data/imdb-sample \
        --seeds 1 2 3 4 5 --output benchmarks/results/distributed-parity-cpu.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SETUPS = {
    "1 process x batch 16": ["-m", "lora_sentiment", "train", "--batch-size", "16"],
    "torchrun 2 x batch 8": [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "lora_sentiment", "train", "--batch-size", "8",
    ],
}  # fmt: skip


def split(data: Path, folder: Path, train_rows: int, eval_rows: int) -> tuple[Path, Path]:
    train, validation = pd.read_parquet(data / "train.parquet"), pd.read_parquet(data / "validation.parquet")
    half = train_rows // 2
    rows = pd.concat([train[train.label == 0].head(half), train[train.label == 1].head(half)])
    rows.sample(frac=1, random_state=0)[["text", "label"]].to_csv(folder / "train.csv", index=False)
    validation.head(eval_rows)[["text", "label"]].to_csv(folder / "eval.csv", index=False)
    return folder / "train.csv", folder / "eval.csv"


def run_one(setup: str, seed: int, common: list[str], out: Path, extra: list[str]) -> dict:
    started = time.perf_counter()
    command = [sys.executable, *SETUPS[setup], *common, *extra, "--seed", str(seed), "--output-dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    metrics = json.loads((out / "metrics.json").read_text())
    history = [round(h["accuracy"], 4) for h in metrics["history"]]
    return {
        "setup": setup, "seed": seed, "accuracy": round(metrics["final"]["accuracy"], 4),
        "eval_loss": round(metrics["final"]["loss"], 4), "history": history,
        "train_loss": [round(h["train_loss"], 4) for h in metrics["history"] if h.get("train_loss") is not None],
        "seconds": round(time.perf_counter() - started, 1), "flags": extra,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, type=Path, help="folder with train.parquet, validation.parquet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--train-rows", type=int, default=480)
    parser.add_argument("--eval-rows", type=int, default=1000)
    parser.add_argument("--extra", nargs="*", default=[], help="extra train flags for both setups")
    parser.add_argument("--output", help="append one JSON line per run here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        train_csv, eval_csv = split(args.data, scratch, args.train_rows, args.eval_rows)
        common = ["--model", args.model, "--data", str(train_csv), "--eval-data", str(eval_csv),
                  "--max-length", "128", "--epochs", "2", "--baseline", "none"]  # fmt: skip
        for seed in args.seeds:
            for number, setup in enumerate(SETUPS):
                result = run_one(setup, seed, common, scratch / f"{seed}-{number}", args.extra)
                print(json.dumps(result), flush=True)
                if args.output:
                    with open(args.output, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
