"""Calibration measured on real data: `lora-sentiment train` with its defaults on all-MiniLM-L6-v2, the run's
cross-fitted calibration report (ECE, Brier, NLL before and after; coverage for regression) and the headline
metric, per task and seed. Tasks:

- imdb: the shared IMDB sample, N training reviews, the 1,000 validation reviews as the evaluation split (with
  --eval-rest also the sample's reviews not drawn for training: 2,200 at N = 800);
- imdb-rating: the same reviews' 1-10 rating as regression (the 90 % interval's coverage);
- goemotions: a seeded draw of N training comments (28 tags), 1,000 validation comments.

    python benchmarks/calibration.py --model "$MINILM" --tasks imdb goemotions --train 800 --seeds 0 1 \
        --output benchmarks/results/calibration-cpu-2026-12-02.jsonl

One JSON line per (task, seed), appended as it finishes; a call again with the same --output runs only what is
missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def task_files(task: str, train_n: int, seed: int, folder: Path, eval_rest: bool = False) -> dict:
    if task in ("imdb", "imdb-rating"):
        sample = pd.read_parquet(SHARED / "imdb-sample" / "train.parquet")
        train = sample.sample(train_n, random_state=seed)
        val = pd.read_parquet(SHARED / "imdb-sample" / "validation.parquet")
        if eval_rest:  # the sample's reviews not drawn for training join the evaluation split
            val = pd.concat([val, sample.drop(train.index)], ignore_index=True)
        label = "label" if task == "imdb" else "rating"
        if task == "imdb-rating":
            train, val = train.assign(rating=train.rating.astype(float)), val.assign(rating=val.rating.astype(float))
        train[["text", label]].to_parquet(folder / "train.parquet")
        val[["text", label]].to_parquet(folder / "val.parquet")
        extra = {"label_column": label, "max_length": 256}
        if task == "imdb-rating":
            extra["problem_type"] = "regression"
        return extra
    train = pd.read_parquet(SHARED / "goemotions" / "train.parquet").sample(train_n, random_state=seed)
    val = pd.read_parquet(SHARED / "goemotions" / "validation.parquet").sample(1000, random_state=0)
    train[["text", "labels"]].to_parquet(folder / "train.parquet")
    val[["text", "labels"]].to_parquet(folder / "val.parquet")
    return {"label_column": "labels", "max_length": 64}


def keep(run: Path, val: Path, column: str, path: Path) -> None:
    import numpy as np

    from lora_sentiment import load_classifier

    frame = pd.read_parquet(val)
    scores = load_classifier(run, engine="torch").predict_scores(frame.text.tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, targets=np.asarray(frame[column].tolist(), dtype=float), scores=scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", nargs="+", default=["imdb"], choices=["imdb", "imdb-rating", "goemotions"])
    parser.add_argument("--train", type=int, default=800, help="training texts per run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", default="auto")
    parser.add_argument("--output", required=True)
    parser.add_argument("--eval-rest", action="store_true",
                        help="IMDB tasks: evaluate on the validation reviews and every training-sample review not "
                        "drawn (2,200 at --train 800), for a binned ECE with a lower sampling floor")  # fmt: skip
    parser.add_argument("--keep-predictions", help="a folder for each run's evaluation targets and outputs "
                        "(TASK-SEED.npz), to study other calibrations without training again")  # fmt: skip
    args = parser.parse_args()

    from lora_sentiment import TrainConfig, train
    from lora_sentiment.modeling.cpu import this_cpu

    done = set()
    if Path(args.output).is_file():
        rows = map(json.loads, Path(args.output).read_text().splitlines())
        done = {(r["task"], r["seed"], r["train"], r.get("eval_rest", False)) for r in rows}
    for task in args.tasks:
        for seed in args.seeds:
            if (task, seed, args.train, args.eval_rest) in done:
                continue
            with tempfile.TemporaryDirectory() as scratch:
                folder = Path(scratch)
                extra = task_files(task, args.train, seed, folder, args.eval_rest)
                files = {"data": str(folder / "train.parquet"), "eval_data": str(folder / "val.parquet"),
                         "output_dir": str(folder / "run")}  # fmt: skip
                config = TrainConfig(model=args.model, seed=seed, epochs=args.epochs, baseline="none",
                                     examples=["fine"], **files, **extra)  # fmt: skip
                started = time.perf_counter()
                result = train(config, log=lambda m: print(m, file=sys.stderr) if m.startswith("Calib") else None)
                final = result.metrics.final.model_dump()
                if args.keep_predictions:
                    keep(result.output_dir, folder / "val.parquet", extra["label_column"],
                         Path(args.keep_predictions) / f"{task}-{seed}.npz")  # fmt: skip
                report = final["calibration"]
                for side in ("before", "after"):
                    report.get(side, {}).pop("reliability", None)
                headline = result.space.problem.headline[0]
                row = {"task": task, "seed": seed, "train": args.train, "eval": final["samples"],
                       "eval_rest": args.eval_rest,
                       "epochs": result.metrics.train.epochs, headline: round(final[headline], 4),
                       "calibration": report, "risk_coverage": (final.get("risk_coverage") or {}).get("table"),
                       "seconds": round(time.perf_counter() - started, 1),
                       "cpu_class": this_cpu().name, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
            print(json.dumps(row), flush=True)
            with open(args.output, "a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
