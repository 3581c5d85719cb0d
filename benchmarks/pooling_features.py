"""What a linear probe reads from what the classification head reads: the first token's pooled state of
all-MiniLM-L6-v2 as transformers builds the classifier, the same with the last layer's query at zero
(`--pooling mean`), and the mean-pooled sentence embedding sentence-transformers uses.

Balanced draws of N reviews per class from the shared IMDB training sample (benchmarks/small_data.py's draw),
standardised features, scikit-learn's logistic regression (C = 1), scored on the 1,000 shared validation reviews.

    python benchmarks/pooling_features.py --model "$MINILM" --data ../shared/data/imdb-sample \
        --output benchmarks/results/pooling-features-amx-cpu-2026-12-03.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.modeling.model import load_classifier_model, load_tokenizer
from lora_sentiment.modeling.pooling import start_pooling

MAX_LENGTH = 256


def draw(train: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """benchmarks/small_data.py's draw: the same reviews for the same seed."""
    parts = [g.sample(per_class, random_state=seed) for _, g in train.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def features(model, tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """Per text: the pooler's output (what BERT's classifier reads), the first token's final state, the mean."""
    out: dict[str, list] = {"pooler": [], "first_token": [], "mean": []}
    dtype = torch.bfloat16 if this_cpu().bf16_units else torch.float32
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        for start in range(0, len(texts), 32):
            batch = tokenizer(texts[start : start + 32], truncation=True, max_length=MAX_LENGTH, padding=True,
                              return_tensors="pt")  # fmt: skip
            encoded = model.bert(**batch)
            states = encoded.last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out["pooler"].append(encoded.pooler_output.float().numpy())
            out["first_token"].append(states[:, 0].numpy())
            out["mean"].append(((states * mask).sum(1) / mask.sum(1)).numpy())
    return {key: np.concatenate(parts) for key, parts in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-class", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    train = pd.read_parquet(Path(args.data) / "train.parquet")
    val = pd.read_parquet(Path(args.data) / "validation.parquet")
    tokenizer = load_tokenizer(args.model)
    results: dict = {"cpu_class": this_cpu().name, "date": time.strftime("%Y-%m-%d"), "scored_on": len(val),
                     "accuracy": {}}  # fmt: skip
    for pooling in ("first-token", "mean"):
        model = load_classifier_model(args.model, ["Negative", "Positive"], tokenizer=tokenizer).eval()
        start_pooling(model, pooling)
        scored = features(model, tokenizer, val.text.tolist())
        for per_class in args.per_class:
            for seed in args.seeds:
                drawn = draw(train, per_class, seed)
                fitted = features(model, tokenizer, drawn.text.tolist())
                for kind, x in fitted.items():
                    scaler = StandardScaler().fit(x)
                    probe = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x), drawn.label)
                    accuracy = float((probe.predict(scaler.transform(scored[kind])) == val.label).mean())
                    key = f"{pooling}/{kind}/{per_class}"
                    results["accuracy"].setdefault(key, []).append(round(accuracy, 3))
                    print(key, seed, round(accuracy, 3), flush=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
