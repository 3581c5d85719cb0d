"""Is one scorer's flagged set better than another's beyond the noise? For finished `audit_noise.py` work folders:
the flagged sets of `lora`, `tfidf` and their mean (`--scorer lora+tfidf`), from the audits' saved fold scores,
by the package's own confident learning; the differences in precision and recall against the flipped rows with
a 95 % interval from a paired bootstrap over the texts.

    python benchmarks/audit_flag_bootstrap.py /work/audit-defaults:0 /work/audit-seed1:1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def fold_scores(audit: Path, labels: np.ndarray) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    scores = np.zeros((len(labels), 2))
    splits = StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels)  # the audit's
    for index, (_, held_out) in enumerate(splits):
        scores[held_out] = np.load(audit / "folds" / f"fold-{index + 1}" / "scores.npy")
    return scores


def quality(flag: np.ndarray, flipped: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(precision, recall) of the flagged set against the flipped rows, on the texts `rows` (a resample)."""
    hits = (flag[rows] & flipped[rows]).sum()
    return np.array([hits / max(flag[rows].sum(), 1), hits / max(flipped[rows].sum(), 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", nargs="+", help="WORK:NOISE_SEED, an audit_noise.py --work folder and its seed")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()

    from lora_sentiment.problems.confident import class_issues

    for item in args.work:
        folder, seed = item.rsplit(":", 1)
        frame = pd.read_parquet(Path(folder) / f"noisy-{seed}.parquet")
        labels, flipped = frame["label"].to_numpy(), frame["flipped"].to_numpy()
        scores = {m: fold_scores(Path(folder) / f"audit-{m}", labels) for m in ("lora", "tfidf")}
        scores["lora+tfidf"] = (scores["lora"] + scores["tfidf"]) / 2
        flags = {name: class_issues(s, labels, ["Negative", "Positive"]).flagged for name, s in scores.items()}

        everything = np.arange(len(labels))
        for name, flag in flags.items():
            precision, recall = quality(flag, flipped, everything)
            print(f"noise seed {seed}, {name}: {flag.sum()} flagged, precision {precision:.3f}, recall {recall:.3f}")
        rng = np.random.default_rng(0)
        draws = [rng.integers(0, len(labels), len(labels)) for _ in range(args.resamples)]
        for other in ("lora", "tfidf"):
            point = quality(flags["lora+tfidf"], flipped, everything) - quality(flags[other], flipped, everything)
            spread = np.array(
                [quality(flags["lora+tfidf"], flipped, d) - quality(flags[other], flipped, d) for d in draws]
            )
            low, high = np.percentile(spread, [2.5, 97.5], axis=0)
            print(f"noise seed {seed}, lora+tfidf - {other}: precision {point[0]:+.3f} ({low[0]:+.3f} to "
                  f"{high[0]:+.3f}), recall {point[1]:+.3f} ({low[1]:+.3f} to {high[1]:+.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
