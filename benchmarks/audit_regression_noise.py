"""`audit` of numbers against known noise: the IMDB sample's ratings (1-4 and 7-10) with 10 % of them moved to a
random rating on the other side (seeded), audited with each scorer (5 folds); the flagged set's precision and recall
against the moved rows, for residuals judged within equal-mass bands of the prediction (the default since
2026-12-06) and against one spread for all texts (before), from the same fold scores.

    python benchmarks/audit_regression_noise.py --model "$MINILM" --work /tmp/rating-noise --seeds 0 1 \
        --output benchmarks/results/audit-regression-noise-CLASS-cpu-DATE.jsonl

The LoRA folds: 128 tokens, 500 validation reviews as each fold's evaluation split, the other settings `train`'s
defaults. One JSON line per seed, scorer and rule, appended.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from jsonl import emit
from noise_args import noise_parser

from lora_sentiment import TrainConfig, audit
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.problems.confident import residual_issues

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb-sample"


def noisy_ratings(work: Path, rate: float, seed: int) -> Path:
    frame = pd.read_parquet(SHARED / "train.parquet")
    rng = np.random.default_rng(seed)
    moved = rng.choice(len(frame), size=round(rate * len(frame)), replace=False)
    frame["moved"] = False
    frame.loc[moved, "moved"] = True
    frame.loc[moved, "rating"] = [int(rng.choice([7, 8, 9, 10] if r <= 4 else [1, 2, 3, 4]))
                                  for r in frame.loc[moved, "rating"]]  # fmt: skip
    path = work / f"ratings-{seed}.parquet"
    frame[["text", "rating", "moved"]].to_parquet(path)
    return path


def main() -> None:
    args = noise_parser(__doc__.split("\n")[0]).parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        path = noisy_ratings(args.work, args.rate, seed)
        frame = pd.read_parquet(path)
        for scorer in args.scorers:
            config = TrainConfig(data=str(path), label_column="rating", problem_type="regression", model=args.model,
                                 max_length=128, eval_data=str(SHARED / "validation.parquet"), max_eval_samples=500,
                                 output_dir=str(args.work / f"audit-{scorer}-{seed}"))  # fmt: skip
            started = time.perf_counter()
            result = audit(config, folds=5, scorer=scorer, log=lambda _: None)
            seconds = time.perf_counter() - started
            rows = np.asarray(result.rows)
            moved = frame["moved"].to_numpy()[rows]
            values = frame["rating"].to_numpy()[rows].astype(float)
            for banded in (False, True):
                flagged = residual_issues(result.scores[:, 0], values, banded=banded).flagged
                hits = int((flagged & moved).sum())
                line = {"seed": seed, "rate": args.rate, "scorer": scorer, "banded": banded,
                        "flagged": int(flagged.sum()), "moved": int(moved.sum()),
                        "precision": round(hits / max(int(flagged.sum()), 1), 4),
                        "recall": round(hits / int(moved.sum()), 4),
                        "mae": round(float(np.abs(values - result.scores[:, 0]).mean()), 3),
                        "seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d"),
                        "cpu_class": this_cpu().name}  # fmt: skip
                emit(line, args.output)


if __name__ == "__main__":
    main()
