"""`audit` on skewed classes: should its LoRA folds weigh the rare class, as `train` does by default?

A skewed draw from the shared IMDB training sample (900 negative and 100 positive reviews by default), 5 % of its
labels flipped at random (so mostly negatives marked positive: the rare class is the polluted one), audited with
5 LoRA folds under `--class-weights balanced` (what `train`'s default, `auto`, gives such data) and `none`, plus the
TF-IDF scorer and each LoRA audit's mean with it (`--scorer lora+tfidf`, computed from the two audits' own fold
scores as benchmarks/audit_noise.py does). The folds evaluate on a draw of the validation split skewed alike.

    python benchmarks/audit_skewed.py --model "$MINILM" --work /tmp/audit-skewed \
        --output benchmarks/results/audit-skewed-avx512-bf16-cpu-2026-12-07.jsonl

One JSON line per audit, appended as it finishes; a call again with the same --output and --work runs only what is
missing (an audit resumes from its finished folds). The 2026-12-07 file's draws 0 and 1 name the weighted folds
`auto`: they ran before `audit` read `auto` as none, when it meant balanced for these draws. Its `lora+tfidf-auto`
and `lora+tfidf-balanced` rows average the weighted LoRA folds with an unweighted TF-IDF member, as `audit` did
then; since, the TF-IDF member follows --class-weights too: the `lora+weighted-tfidf-balanced` rows, with their
paired differences against the unweighted member and against unweighted folds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from audit_noise import SHARED, flag_quality


def skewed_draw(frame: pd.DataFrame, negatives: int, positives: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = [frame[frame.label == label].iloc[rng.permutation((frame.label == label).sum())[:count]]
             for label, count in ((0, negatives), (1, positives))]  # fmt: skip
    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)


def noisy_file(work: Path, args: argparse.Namespace, seed: int) -> Path:
    path = work / f"noisy-{seed}.parquet"
    if not path.exists():
        frame = skewed_draw(pd.read_parquet(SHARED / "train.parquet"), args.negatives, args.positives, seed)
        flipped = np.random.default_rng(seed).choice(len(frame), size=round(args.rate * len(frame)), replace=False)
        frame["given_before"] = frame["label"]
        frame["flipped"] = False
        frame.loc[flipped, "flipped"] = True
        frame.loc[flipped, "label"] = 1 - frame.loc[flipped, "label"]
        frame.to_parquet(path)
    return path


def by_direction(flagged: set[int], ranked: list[int], frame: pd.DataFrame) -> dict[str, object]:
    """Recall of each kind of flip, how many flags fell on each given class, and the precision of the ranking's
    top as many texts as were flipped (precision = recall there)."""
    flipped = set(np.flatnonzero(frame.flipped.to_numpy()))
    out: dict[str, object] = {"top_flipped_precision": sum(r in flipped for r in ranked[: len(flipped)]) / len(flipped)}
    for name, before in (("negative_marked_positive", 0), ("positive_marked_negative", 1)):
        rows = set(np.flatnonzero((frame.flipped & (frame.given_before == before)).to_numpy()))
        out[name] = {"flipped": len(rows), "found": len(rows & flagged)}
    out["flags_on_given"] = {str(label): int(sum(frame.label.iloc[r] == label for r in flagged)) for label in (0, 1)}
    return out


def paired_difference(ours: np.ndarray, theirs: np.ndarray, flipped: np.ndarray, resamples: int = 2000) -> dict:
    """Precision and recall of one flagged set minus another's, with a 95 % interval from a paired bootstrap over
    the texts (benchmarks/audit_flag_bootstrap.py's way)."""

    def quality(flag: np.ndarray, rows: np.ndarray) -> np.ndarray:
        hits = (flag[rows] & flipped[rows]).sum()
        return np.array([hits / max(flag[rows].sum(), 1), hits / max(flipped[rows].sum(), 1)])

    everything, rng = np.arange(len(flipped)), np.random.default_rng(0)
    point = quality(ours, everything) - quality(theirs, everything)
    spread = np.array([quality(ours, d) - quality(theirs, d)
                       for d in (rng.integers(0, len(flipped), len(flipped)) for _ in range(resamples))])  # fmt: skip
    low, high = np.percentile(spread, [2.5, 97.5], axis=0)
    return {name: [round(float(v), 4) for v in (point[i], low[i], high[i])] for i, name in
            enumerate(("precision", "recall"))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--noise-seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--negatives", type=int, default=900)
    parser.add_argument("--positives", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--eval-negatives", type=int, default=450)
    parser.add_argument("--eval-positives", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", default="2")
    args = parser.parse_args()

    from lora_sentiment import TrainConfig, audit
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.problems.confident import class_issues

    work, output = Path(args.work), Path(args.output)
    work.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["step"] for line in output.read_text().splitlines()} if output.exists() else set()
    evaluation = work / "evaluation.parquet"
    if not evaluation.exists():
        skewed_draw(pd.read_parquet(SHARED / "validation.parquet"), args.eval_negatives, args.eval_positives,
                    0).to_parquet(evaluation)  # fmt: skip

    def record(step: str, **values: object) -> None:
        with output.open("a") as handle:
            handle.write(json.dumps({"step": step, "date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().name,
                                     **values}) + "\n")  # fmt: skip

    for seed in args.noise_seeds:
        noisy = noisy_file(work, args, seed)
        frame = pd.read_parquet(noisy)
        flipped = set(np.flatnonzero(frame.flipped.to_numpy()))
        results = {}
        for scorer, weights in (("tfidf", "none"), ("tfidf", "balanced"), ("lora", "balanced"), ("lora", "none")):
            step = f"{seed}-{scorer}-{weights}"
            config = TrainConfig(model=args.model, data=str(noisy), eval_data=str(evaluation), seed=0,
                                 max_length=args.max_length, epochs=args.epochs, class_weights=weights,
                                 output_dir=str(work / step))  # fmt: skip
            started = time.perf_counter()
            results[step] = result = audit(config, folds=5, scorer=scorer, log=lambda _: None)
            if step in done:
                continue
            flagged = {r["row"] for r in result.issues if r["kind"] == "label"}
            ranked = [int(r) for r in np.asarray(result.rows)[np.argsort(-result.label_scores, kind="stable")]]
            record(step, noise_seed=seed, scorer=scorer, class_weights=weights,
                   **flag_quality(flagged, ranked, flipped), **by_direction(flagged, ranked, frame),
                   estimated_noise_rate=result.summary["labels"]["estimated_noise_rate"],
                   scorer_quality=result.summary["scorer_quality"],
                   seconds=round(time.perf_counter() - started, 1))  # fmt: skip
        tfidf = results[f"{seed}-tfidf-none"]
        flags = {}
        for weights in ("balanced", "none"):
            step = f"{seed}-lora+tfidf-{weights}"
            lora = results[f"{seed}-lora-{weights}"]
            assert lora.rows == tfidf.rows
            labels = frame.label.to_numpy()[lora.rows]
            rows = np.asarray(lora.rows)
            flags[f"lora-{weights}"] = np.isin(np.arange(len(frame)), [r["row"] for r in lora.issues
                                                                        if r["kind"] == "label"])  # fmt: skip
            issues = class_issues((lora.scores + tfidf.scores) / 2, labels, ["Negative", "Positive"])
            flags[f"lora+tfidf-{weights}"] = np.isin(np.arange(len(frame)), rows[issues.flagged])
            if step in done:
                continue
            flagged = set(rows[issues.flagged].tolist())
            ranked = [int(r) for r in rows[np.argsort(-issues.score, kind="stable")]]
            record(step, noise_seed=seed, scorer="lora+tfidf", class_weights=weights,
                   **flag_quality(flagged, ranked, flipped), **by_direction(flagged, ranked, frame),
                   estimated_noise_rate=issues.summary["estimated_noise_rate"])  # fmt: skip
        truth = frame.flipped.to_numpy()
        step = f"{seed}-none-minus-balanced"
        if step not in done:
            differences = {s: paired_difference(flags[f"{s}-none"], flags[f"{s}-balanced"], truth)
                           for s in ("lora", "lora+tfidf")}  # fmt: skip
            record(step, noise_seed=seed, **differences)
        step = f"{seed}-lora+weighted-tfidf-balanced"  # both members weighted, as `audit` weighs them since
        lora, weighted = results[f"{seed}-lora-balanced"], results[f"{seed}-tfidf-balanced"]
        assert lora.rows == weighted.rows
        rows = np.asarray(lora.rows)
        issues = class_issues(
            (lora.scores + weighted.scores) / 2, frame.label.to_numpy()[rows], ["Negative", "Positive"]
        )
        both = np.isin(np.arange(len(frame)), rows[issues.flagged])
        if step not in done:
            flagged = set(rows[issues.flagged].tolist())
            ranked = [int(r) for r in rows[np.argsort(-issues.score, kind="stable")]]
            record(step, noise_seed=seed, scorer="lora+tfidf", class_weights="balanced", tfidf_class_weights="balanced",
                   **flag_quality(flagged, ranked, flipped), **by_direction(flagged, ranked, frame),
                   estimated_noise_rate=issues.summary["estimated_noise_rate"],
                   minus_unweighted_member=paired_difference(both, flags["lora+tfidf-balanced"], truth),
                   none_minus_this=paired_difference(flags["lora+tfidf-none"], both, truth))  # fmt: skip


if __name__ == "__main__":
    main()
