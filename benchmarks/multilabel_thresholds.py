"""How a multi-label run should pick each tag's threshold when its evaluation split holds few of that tag: rules
decided on a run's evaluation split, scored on GoEmotions' 5,426 validation comments none of them saw.

    python benchmarks/multilabel_thresholds.py --model "$MINILM" --data ../shared/data/goemotions --comments 2000 \
        --seeds 0 1 2 --output benchmarks/results/multilabel-thresholds-CLASS-cpu-DATE.jsonl

Each seed draws N comments from the training split: four fifths train a run with `train`'s defaults, the other
fifth is its `--eval-data` (as the fifth a run carves for itself), on which the run calibrates and each rule below
decides the thresholds from the run's calibrated probabilities; every rule's thresholds are then scored on the
validation comments (macro- and micro-F1 over the tags the draw has). One JSON line per seed and rule, appended;
the run's own line also holds the scores the run reported on its evaluation split (`reported`, thresholds tuned on
those comments) and its estimate for unseen texts (`out_of_sample`); the `flattery at N` lines draw N of the
validation comments 30 times as an evaluation split (the rest unseen) and give the mean error of both against the
unseen score, in macro-F1.

Rules: `per-tag` (the default until 2026-12-06: each tag's best F1 on the grid, ties the lowest, 0.5 for a tag
with no positive), `per-tag, 0.5 where F1 is 0`, `global` (one threshold for every tag, the best micro-F1),
`per-tag from K positives, else global`, and `shrunk M` (each tag's threshold pulled towards the global one as
(n t_tag + M t_global) / (n + M), n its positives)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jsonl import emit

from lora_sentiment import TrainConfig, load_classifier, train
from lora_sentiment.inference.evaluation import labelled_rows
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.options import EvalOptions
from lora_sentiment.problems.intervals import f1_from_counts
from lora_sentiment.problems.multi_label import THRESHOLD_GRID


def f1_grid(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """F1 of each tag (rows) at each grid threshold (columns)."""
    labels = labels.astype(bool)[:, :, None]
    predicted = probabilities[:, :, None] >= THRESHOLD_GRID[None, None, :]
    tp = (predicted & labels).sum(axis=0)
    fp = (predicted & ~labels).sum(axis=0)
    fn = (~predicted & labels).sum(axis=0)
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def global_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    labels = labels.astype(bool)
    best, chosen = -1.0, 0.5
    for t in THRESHOLD_GRID:
        predicted = probabilities >= t
        f1 = f1_from_counts((predicted & labels).sum(), (predicted & ~labels).sum(), (~predicted & labels).sum())
        if f1 > best:
            best, chosen = float(f1), float(t)
    return chosen


def rules(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    f1 = f1_grid(labels, probabilities)
    positives = labels.astype(bool).sum(axis=0)
    per_tag = np.where(positives > 0, THRESHOLD_GRID[f1.argmax(axis=1)], 0.5)
    everywhere = global_threshold(labels, probabilities)
    found: dict[str, np.ndarray] = {
        "per-tag": per_tag,
        "per-tag, 0.5 where F1 is 0": np.where(f1.max(axis=1) > 0, per_tag, 0.5),
        "global": np.full(labels.shape[1], everywhere),
    }
    for k in (3, 5, 10):
        found[f"per-tag from {k} positives, else global"] = np.where(positives >= k, per_tag, everywhere)
    for m in (3, 10):
        tuned = np.where(f1.max(axis=1) > 0, per_tag, everywhere)
        found[f"shrunk {m}"] = (positives * tuned + m * everywhere) / (positives + m)
    return found


def scored(thresholds: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    truth = labels.astype(bool)
    predicted = probabilities >= thresholds[None, :]
    tp, fp, fn = ((predicted & truth).sum(0), (predicted & ~truth).sum(0), (~predicted & truth).sum(0))
    micro = f1_from_counts(tp.sum(), fp.sum(), fn.sum())
    return {"f1_macro": float(f1_from_counts(tp, fp, fn).mean()), "f1_micro": float(micro)}


def flattery(labels: np.ndarray, scores: np.ndarray, sizes: list[int], draws: int, seed: int) -> list[dict]:
    """How much thresholds tuned on an evaluation split flatter its scores, and how near the out-of-sample estimate
    (each fifth decided by thresholds tuned on the other four) comes: `draws` draws of N of the validation
    comments as the evaluation split, the rest as unseen texts, all from one run's probabilities."""
    from lora_sentiment.problems.base import problem_type
    from lora_sentiment.problems.multi_label import tune_thresholds

    rng, out = np.random.default_rng(seed), []
    for n in sizes:
        errors = []
        for _ in range(draws):
            order = rng.permutation(len(labels))
            split, unseen = order[:n], order[n:]
            tuned = tune_thresholds(labels[split], scores[split])
            truth = scored(tuned, labels[unseen], scores[unseen])["f1_macro"]
            estimate = problem_type("multi-label").decided_out_of_sample(labels[split], scores[split], None, seed)
            errors.append((scored(tuned, labels[split], scores[split])["f1_macro"] - truth,
                           estimate["f1_macro"] - truth))  # fmt: skip
        mean, rms = np.mean(errors, axis=0), np.sqrt(np.mean(np.square(errors), axis=0))
        out.append({"rule": f"flattery at {n}", "draws": draws, "reported_minus_unseen": round(float(mean[0]), 4),
                    "out_of_sample_minus_unseen": round(float(mean[1]), 4),
                    "rms": [round(float(r), 4) for r in rms]})  # fmt: skip
    return out


def drawn_run(model: str, data: Path, comments: int, seed: int, scratch: Path) -> Any:
    """A run with `train`'s defaults on N comments drawn from the training split: four fifths in `scratch`'s
    train.parquet, the other fifth its `--eval-data` (eval.parquet; a small draw's rare tags that training lacks
    left out of it, as `train` refuses them)."""
    frame = pd.read_parquet(data / "train.parquet")
    drawn = frame.sample(n=comments, random_state=seed).reset_index(drop=True)
    cut = comments * 4 // 5
    drawn[:cut][["text", "labels"]].to_parquet(scratch / "train.parquet")
    trained = {tag for tags in drawn[:cut]["labels"] for tag in tags}
    evaluation = drawn[cut:][["text", "labels"]].copy()
    evaluation["labels"] = [[tag for tag in tags if tag in trained] for tags in evaluation["labels"]]
    evaluation.to_parquet(scratch / "eval.parquet")
    config = TrainConfig(data=str(scratch / "train.parquet"), eval_data=str(scratch / "eval.parquet"),
                         label_column="labels", model=model, seed=seed, baseline="none",
                         output_dir=str(scratch / "run"))  # fmt: skip
    return train(config, log=lambda _: None, step_lines=False)


def measured(model: str, data: Path, comments: int, seed: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        result = drawn_run(model, data, comments, seed, scratch)
        seconds = time.perf_counter() - started
        classifier = load_classifier(result.output_dir, engine="torch")
        known = set(classifier.space.names)
        read = {}
        for name, source in (("eval", scratch / "eval.parquet"), ("validation", data / "validation.parquet")):
            table = pd.read_parquet(source)
            table["labels"] = [[tag for tag in tags if tag in known] for tags in table["labels"]]
            table[["text", "labels"]].to_parquet(scratch / f"{name}-known.parquet")
            rows = labelled_rows(str(scratch / f"{name}-known.parquet"), EvalOptions(), classifier.run_config,
                                 classifier.space).dataset  # fmt: skip
            read[name] = (np.asarray(rows["label"]), classifier.predict_scores(rows["text"]))
    (eval_labels, eval_scores), (labels, scores) = read["eval"], read["validation"]
    kept = np.asarray(classifier.space.thresholds)
    common = {"comments": comments, "seed": seed, "train_seconds": round(seconds, 1), "tags": len(known),
              "eval_positives": eval_labels.astype(bool).sum(0).tolist()}  # fmt: skip
    final = result.metrics.final
    # What the run reported on its evaluation split (thresholds tuned there) and its out-of-sample estimate (each
    # fifth decided by thresholds tuned on the rest), beside the same thresholds' score on unseen comments.
    reported = {"reported": {key: final[key] for key in ("f1_macro", "f1_micro")},
                "out_of_sample": final.get("out_of_sample")}  # fmt: skip
    out = [{**common, "rule": "the run's own", **scored(kept, labels, scores), **reported}]
    for rule, thresholds in rules(eval_labels, eval_scores).items():
        out.append({**common, "rule": rule, **scored(thresholds, labels, scores),
                    "same_as_run": bool(np.allclose(thresholds, kept)) if rule == "per-tag" else None})  # fmt: skip
    out += [{**common, **row} for row in flattery(labels, scores, [200, 400, 1000, 2000], 30, seed)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with GoEmotions' train/validation parquet")
    parser.add_argument("--comments", type=int, nargs="+", default=[2000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    for comments in args.comments:
        for seed in args.seeds:
            for row in measured(args.model, args.data, comments, seed):
                row.update(date=time.strftime("%Y-%m-%d"), cpu_class=this_cpu().name)
                emit(row, args.output)
    sys.exit(0)


if __name__ == "__main__":
    main()
