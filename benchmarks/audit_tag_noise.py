"""`audit` of multi-label data against known tag noise: a seeded draw of GoEmotions training comments, on 10 % of
them one given tag swapped for one not given (a missing tag and an extra one each), audited with each scorer (5
folds); each (comment, tag) flag is checked against the swaps, for confident learning as the paper counts a text
as the answer other than its given one (floor 0) and only from a probability of 0.5 as well (`TAG_FLOOR`, the
default since 2026-12-06), from the same fold scores.

    python benchmarks/audit_tag_noise.py --model "$MINILM" --data ../shared/data/goemotions --work /tmp/tag-noise \
        --seeds 0 1 --output benchmarks/results/audit-tag-noise-CLASS-cpu-DATE.jsonl

The LoRA folds: 64 tokens, batch 32, learning rate 2e-3, 1,000 validation comments as each fold's evaluation split
(the settings of the GoEmotions audit in docs/audit.md). The given labels of GoEmotions have errors of their own,
which count as false alarms here, so precision is a lower bound; the two floors are compared on the same scores.
One JSON line per seed, scorer and floor, appended.
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
from lora_sentiment.problems.confident import tag_issues


def noisy_draw(data: Path, work: Path, comments: int, rate: float, seed: int) -> tuple[Path, pd.DataFrame]:
    frame = pd.read_parquet(data / "train.parquet")
    names = sorted({tag for tags in frame["labels"] for tag in tags})
    drawn = frame.sample(n=comments, random_state=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    labels, truth = [list(tags) for tags in drawn["labels"]], [list(tags) for tags in drawn["labels"]]
    for row in rng.choice(comments, size=round(rate * comments), replace=False):
        given = labels[row]
        others = [tag for tag in names if tag not in given]
        dropped, added = given[rng.integers(len(given))], others[rng.integers(len(others))]
        labels[row] = [tag for tag in given if tag != dropped] + [added]
    drawn["labels"], drawn["truth"] = labels, truth
    path = work / f"noisy-{seed}.parquet"
    drawn[["text", "labels", "truth"]].to_parquet(path)
    return path, drawn


def quality(flags: np.ndarray, given: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    wrong = given != truth
    hits = int((flags & wrong).sum())
    return {"flagged": int(flags.sum()), "flagged_missing": int((flags & (given == 0)).sum()),
            "flagged_extra": int((flags & (given == 1)).sum()), "swapped": int(wrong.sum()),
            "precision": round(hits / max(int(flags.sum()), 1), 4), "recall": round(hits / int(wrong.sum()), 4),
            "texts_flagged": int(flags.any(axis=1).sum())}  # fmt: skip


def main() -> None:
    parser = noise_parser(__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with GoEmotions' train/validation parquet")
    parser.add_argument("--comments", type=int, default=2000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        noisy, drawn = noisy_draw(args.data, args.work, args.comments, args.rate, seed)
        for scorer in args.scorers:
            folder = args.work / f"audit-{scorer}-{seed}"
            config = TrainConfig(data=str(noisy), label_column="labels", model=args.model, max_length=64,
                                 batch_size=32, learning_rate=2e-3, eval_data=str(args.data / "validation.parquet"),
                                 max_eval_samples=1000, output_dir=str(folder))  # fmt: skip
            started = time.perf_counter()
            result = audit(config, folds=5, scorer=scorer, log=lambda _: None)
            seconds = time.perf_counter() - started
            names = result.summary["label_names"]
            rows = np.asarray(result.rows)
            given = np.array([[tag in drawn["labels"][r] for tag in names] for r in rows], dtype=int)
            truth = np.array([[tag in drawn["truth"][r] for tag in names] for r in rows], dtype=int)
            for floor in (0.0, 0.5):
                issues = tag_issues(result.scores, given, names, floor=floor)
                flags = np.asarray(issues.suggested).round().astype(int) != given
                line = {"seed": seed, "comments": args.comments, "rate": args.rate, "scorer": scorer, "floor": floor,
                        **quality(flags, given, truth), "estimated_noise_rate": issues.summary["estimated_noise_rate"],
                        "true_noise_rate": round(float((given != truth).mean()), 4),
                        "scorer_quality": result.summary["scorer_quality"], "seconds": round(seconds, 1),
                        "date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().name}  # fmt: skip
                emit(line, args.output)


if __name__ == "__main__":
    main()
