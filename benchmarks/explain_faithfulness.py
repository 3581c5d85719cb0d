"""Are the explanations faithful? ERASER's measures (DeYoung et al. 2020) on a run and real reviews, for
integrated gradients, occlusion and random words, side by side:

- comprehensiveness at k %: the predicted class's probability with the text as it is, minus with its top k % of
  words (by the method's score towards that class) removed: large when those words carried the answer;
- sufficiency at k %: the same probability minus with only those words kept: small when they suffice;
- seconds per explanation on this machine.

    python benchmarks/explain_faithfulness.py RUN ../shared/data/imdb-sample/validation.parquet --rows 200 \
        --output benchmarks/results/explain-faithfulness-cpu-2026-12-02.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

FRACTIONS = (0.05, 0.1, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients' path steps")
    parser.add_argument("--occlusion-rows", type=int, help="occlusion on the first this many only [--rows]")
    parser.add_argument("--output")
    args = parser.parse_args()

    from lora_sentiment import load_classifier
    from lora_sentiment.inference.explain import explain
    from lora_sentiment.modeling.cpu import this_cpu

    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    texts = read(args.data).sample(args.rows, random_state=1).text.tolist()
    classifier = load_classifier(args.run, engine="torch", precision="fp32")
    scores = classifier.predict_scores(texts)
    predicted = scores.argmax(axis=1)
    rng = np.random.default_rng(0)
    results: dict = {"rows": args.rows, "steps": args.steps, "cpu_class": this_cpu().name,
                     "date": time.strftime("%Y-%m-%d"), "methods": {}}  # fmt: skip
    words_read = None
    for method in ("integrated-gradients", "random", "occlusion"):
        started = time.perf_counter()
        if method == "random":  # the same words as integrated gradients read, in a random order
            made = words_read
            word_scores = [rng.permutation(len(e.words)).astype(float) for e in made]
        else:
            n = args.occlusion_rows or args.rows if method == "occlusion" else args.rows
            made = explain(classifier, texts[:n], method=method, steps=args.steps, scores=scores[:n])
            word_scores = [np.array([s for _, s in e.words]) for e in made]
            words_read = words_read or made
        seconds = (time.perf_counter() - started) / len(made)
        row: dict = {"texts": len(made), "seconds_per_text": round(seconds, 3) if method != "random" else None}
        for fraction in FRACTIONS:
            removed, kept = [], []
            for e, ws in zip(made, word_scores):
                words = [w for w, _ in e.words]
                k = max(1, int(round(fraction * len(words))))
                top = set(np.argsort(-ws, kind="stable")[:k].tolist())
                removed.append(" ".join(w for i, w in enumerate(words) if i not in top))
                kept.append(" ".join(w for i, w in enumerate(words) if i in top))
            rows = np.arange(len(made))
            full = scores[rows, predicted[rows]]
            without = classifier.predict_scores(removed)[rows, predicted[rows]]
            only = classifier.predict_scores(kept)[rows, predicted[rows]]
            row[f"comprehensiveness@{fraction:g}"] = round(float((full - without).mean()), 4)
            row[f"sufficiency@{fraction:g}"] = round(float((full - only).mean()), 4)
        results["methods"][method] = row
        print(method, json.dumps(row), flush=True)
    random10 = results["methods"]["random"]["comprehensiveness@0.1"]
    for method in ("integrated-gradients", "occlusion"):
        ours = results["methods"][method]["comprehensiveness@0.1"]
        results["methods"][method]["x_random@0.1"] = round(ours / random10, 2) if random10 > 0 else None
    print(json.dumps(results, indent=1))
    if args.output:
        with open(args.output, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
