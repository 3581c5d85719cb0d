"""Repeated cross-fitting against known noise: does averaging the out-of-sample scores of LoRA audits run with other
seeds (other fold assignments, other training seeds) flag the flipped labels more precisely than one audit?

The same noisy file as benchmarks/audit_noise.py (10 % of the shared IMDB training sample flipped, seeded), a
`--scorer lora` audit per --audit-seeds value (5 folds each), then confident learning by the package's own function
on each audit's scores alone and on their mean:

    python benchmarks/audit_repeats.py --model "$MINILM" --work /tmp/audit-repeats --noise-seed 0 \
        --audit-seeds 0 1 --output benchmarks/results/audit-repeats-CLASS-cpu-DATE.jsonl

One JSON line per result, appended; a call again with the same --work resumes each audit from its finished folds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from audit_noise import SHARED, noise_parser, noisy_file, scores_quality


def main() -> None:
    parser = noise_parser(__doc__.split("\n")[0])
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--audit-seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--max-eval-samples", type=int, default=500)
    args = parser.parse_args()

    from lora_sentiment import TrainConfig, audit
    from lora_sentiment.modeling.cpu import this_cpu

    work, output = Path(args.work), Path(args.output)
    work.mkdir(parents=True, exist_ok=True)
    noisy = noisy_file(work, 0.10, args.noise_seed)
    frame = pd.read_parquet(noisy)
    flipped = set(np.flatnonzero(frame["flipped"].to_numpy()))

    def record(step: str, **values: object) -> None:
        with output.open("a") as handle:
            handle.write(json.dumps({"step": step, "noise_seed": args.noise_seed, "date": time.strftime("%Y-%m-%d"),
                                     "cpu_class": this_cpu().name, **values}) + "\n")  # fmt: skip

    scores: dict[str, list[np.ndarray]] = {"lora": [], "tfidf": []}
    order = None
    for seed in args.audit_seeds:
        for scorer in ("lora", "tfidf"):
            started = time.perf_counter()
            config = TrainConfig(model=args.model, data=str(noisy), output_dir=str(work / f"audit-{scorer}-{seed}"),
                                 seed=seed, max_length=args.max_length, epochs=args.epochs,
                                 eval_data=str(SHARED / "validation.parquet"),
                                 max_eval_samples=args.max_eval_samples)  # fmt: skip
            result = audit(config, folds=5, scorer=scorer, log=lambda _: None)
            rows = np.asarray(result.rows)
            if order is None:
                order = np.argsort(rows)
            assert (np.sort(rows) == rows[order]).all()
            aligned = result.scores[np.argsort(rows)]  # every audit's texts in the file's row order
            scores[scorer].append(aligned)
            labels = frame["label"].to_numpy()[np.sort(rows)]
            record(f"{scorer}-seed{seed}", **scores_quality(aligned, labels, np.sort(rows), flipped),
                   seconds=round(time.perf_counter() - started, 1))  # fmt: skip
    rows = np.sort(np.asarray(result.rows))
    labels = frame["label"].to_numpy()[rows]
    seeds = "+".join(str(s) for s in args.audit_seeds)
    lora_mean = np.mean(scores["lora"], axis=0)
    record(f"lora-mean-of-seeds{seeds}", **scores_quality(lora_mean, labels, rows, flipped))
    for i, seed in enumerate(args.audit_seeds):
        one = (scores["lora"][i] + scores["tfidf"][i]) / 2
        record(f"lora+tfidf-seed{seed}", **scores_quality(one, labels, rows, flipped))
    record(f"lora-mean+tfidf-mean-of-seeds{seeds}",
           **scores_quality((lora_mean + np.mean(scores["tfidf"], axis=0)) / 2, labels, rows, flipped))  # fmt: skip


if __name__ == "__main__":
    main()
