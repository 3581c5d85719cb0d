"""The arguments every training-step benchmark takes (train_step_faults.py, train_attention.py), without importing
torch: a benchmark that measures child processes keeps its parent light."""

from __future__ import annotations

import argparse
from pathlib import Path

TRAIN_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb-sample" / "train.parquet"


def step_parser(description: str) -> argparse.ArgumentParser:
    """--model, --data (the shared IMDB training sample), --precision fp32|bf16, --max-length."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=str(TRAIN_SAMPLE))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--max-length", type=int, default=256)
    return parser
