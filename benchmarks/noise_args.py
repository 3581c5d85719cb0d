"""The flags the injected-noise audit benchmarks share (audit_tag_noise.py, audit_regression_noise.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def noise_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--scorers", nargs="+", default=["tfidf", "lora"])
    parser.add_argument("--output", type=Path)
    return parser
