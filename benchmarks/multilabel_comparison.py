"""Is a multi-label run better than its TF-IDF baseline? The comparison `train` prints, measured against the answer
on unseen texts: GoEmotions, a MiniLM run and the baseline trained on the same comments, both scored on the 5,426
validation comments none of them saw.

    python benchmarks/multilabel_comparison.py --model "$MINILM" --data ../shared/data/goemotions --comments 2000 \
        --seeds 0 1 2 --output benchmarks/results/multilabel-comparison-CLASS-cpu-DATE.jsonl

Each seed draws N comments from the training split: four fifths train a run with `train`'s defaults and the
baseline, the other fifth is the run's `--eval-data` (its calibration). Then, 30 times per size, S validation
comments stand in for an evaluation split and the rest for unseen texts: each model's thresholds are tuned on the S
comments (as `train` tunes both), and the run is compared with the baseline on them twice, the paired bootstrap
on the thresholds' own decisions (`as tuned`, `train` before 2026-12-06) and on each fifth decided by thresholds
tuned on the other four (`out of sample`, `train` since). The truth is the difference in macro-F1 between the two
models on the unseen comments, each with the thresholds tuned on the S. One JSON line per seed and size: each
comparison's mean error against the truth, how often its 95 % interval holds the truth, and how often it said
"better, beyond the noise"."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from jsonl import emit
from multilabel_thresholds import drawn_run, scored

from lora_sentiment import load_classifier
from lora_sentiment.inference.evaluation import labelled_rows
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.options import EvalOptions
from lora_sentiment.problems.intervals import paired_comparison
from lora_sentiment.problems.multi_label import tune_thresholds
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training.baseline import baseline_scores, fit_baseline


def scores_on_validation(model: str, data: Path, comments: int, seed: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The validation comments' tags (those the draw has), the run's and the baseline's probabilities."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        result = drawn_run(model, data, comments, seed, scratch)
        classifier = load_classifier(result.output_dir, engine="torch")
        space, known = classifier.space, set(classifier.space.names)
        validation = pd.read_parquet(data / "validation.parquet")
        validation["labels"] = [[tag for tag in tags if tag in known] for tags in validation["labels"]]
        validation[["text", "labels"]].to_parquet(scratch / "validation.parquet")
        rows = labelled_rows(str(scratch / "validation.parquet"), EvalOptions(), classifier.run_config, space).dataset
        training = labelled_rows(str(scratch / "train.parquet"), EvalOptions(), classifier.run_config, space).dataset
        run = np.asarray(classifier.predict_scores(rows["text"]))
    pipeline = fit_baseline(training["text"], np.asarray(training["label"]), space, seed=seed)
    return np.asarray(rows["label"]), run, [baseline_scores(pipeline, rows["text"], space), space]


def compared(labels: np.ndarray, run: np.ndarray, base: np.ndarray, names: list[str], size: int, draws: int,
             seed: int) -> dict:  # fmt: skip
    rng = np.random.default_rng(seed)
    found: dict[str, list] = {"as tuned": [], "out of sample": []}
    truths = []
    for draw in range(draws):
        order = rng.permutation(len(labels))
        split, unseen = order[:size], order[size:]
        tuned = [tune_thresholds(labels[split], s[split]) for s in (run, base)]
        ours, theirs = (LabelSpace("multi-label", names, t.tolist()) for t in tuned)
        truth = (scored(tuned[0], labels[unseen], run[unseen])["f1_macro"]
                 - scored(tuned[1], labels[unseen], base[unseen])["f1_macro"])  # fmt: skip
        truths.append(truth)
        for how, tuned_on in (("as tuned", None), ("out of sample", seed * 1000 + draw)):
            c = paired_comparison(ours, labels[split], run[split], base[split], theirs, tuned_on=tuned_on)
            low, high = c["interval"]
            found[how].append((c["difference"] - truth, low <= truth <= high, c["better"] is True,
                               c["better"] is False))  # fmt: skip
    out = {"size": size, "draws": draws, "unseen_difference": round(float(np.mean(truths)), 4),
           "unseen_difference_range": [round(float(min(truths)), 4), round(float(max(truths)), 4)]}  # fmt: skip
    for how, rows in found.items():
        errors = np.array([r[0] for r in rows])
        out[how] = {"mean_error": round(float(errors.mean()), 4),
                    "rms_error": round(float(np.sqrt((errors**2).mean())), 4),
                    "interval_holds_truth": round(float(np.mean([r[1] for r in rows])), 3),
                    "said_better": int(sum(r[2] for r in rows)),
                    "said_worse": int(sum(r[3] for r in rows))}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with GoEmotions' train/validation parquet")
    parser.add_argument("--comments", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[80, 200, 400, 1000])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    for seed in args.seeds:
        started = time.perf_counter()
        labels, run, (base, space) = scores_on_validation(args.model, args.data, args.comments, seed)
        seconds = round(time.perf_counter() - started, 1)
        for size in args.sizes:
            row = compared(labels, run, base, space.names, size, args.draws, seed)
            row.update(comments=args.comments, seed=seed, tags=len(space.names), seconds=seconds,
                       date=time.strftime("%Y-%m-%d"), cpu_class=this_cpu().name)  # fmt: skip
            emit(row, args.output)
    sys.exit(0)


if __name__ == "__main__":
    main()
