"""`audit` against known noise: the labels of 10 % of the shared IMDB training sample flipped (seeded), audited with
each scorer (5 folds), the flagged set's precision and recall against the flipped rows; then `train` on the clean,
the noisy and the audit's cleaned file, each scored on the shared validation split, per seed.

    python benchmarks/audit_noise.py --model "$MINILM" --work /tmp/audit-noise \
        --output benchmarks/results/audit-noise-cpu-2026-12-02.jsonl
    python benchmarks/audit_noise.py --model "$MINILM" --work /tmp/audit-relabel --scorers tfidf --relabel \
        --train-max-length 128 --train-seeds 0 1 --train-on noisy relabeled-tfidf \
        --output benchmarks/results/audit-relabel-cpu-2026-12-02.jsonl

One JSON line per step, appended as it finishes; a call again with the same --output and --work runs only what is
missing (an audit resumes from its finished folds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb-sample"


def noisy_file(work: Path, rate: float, seed: int) -> Path:
    path = work / f"noisy-{seed}.parquet"
    if not path.exists():
        frame = pd.read_parquet(SHARED / "train.parquet")
        flipped = np.random.default_rng(seed).choice(len(frame), size=round(rate * len(frame)), replace=False)
        frame["flipped"] = False
        frame.loc[flipped, "flipped"] = True
        frame.loc[flipped, "label"] = 1 - frame.loc[flipped, "label"]
        frame.to_parquet(path)
    return path


def flag_quality(flagged: set[int], ranked: list[int], flipped: set[int]) -> dict[str, object]:
    hits = len(flagged & flipped)
    top = {k: sum(row in flipped for row in ranked[:k]) / k for k in (150, 200) if k <= len(ranked)}
    precision, recall = hits / max(len(flagged), 1), hits / len(flipped)
    return {"flagged": len(flagged), "flipped": len(flipped), "true_positives": hits, "precision": precision,
            "recall": recall, "top_k_precision": top}  # fmt: skip


def from_members(config, work: Path, noisy: Path, flipped: set[int]) -> dict[str, object]:
    """lora+tfidf without training its LoRA folds again: the finished `lora` and `tfidf` audits of the same file
    (the same folds: one seed, one stratification) resumed, their scores averaged as `--scorer lora+tfidf` does
    fold by fold, and confident learning run on the mean by the package's own function."""
    from lora_sentiment import audit

    results = [audit(config.model_copy(update={"output_dir": str(work / f"audit-{m}")}), folds=5, scorer=m,
                     log=lambda _: None) for m in ("lora", "tfidf")]  # fmt: skip
    assert results[0].rows == results[1].rows
    labels = pd.read_parquet(noisy)["label"].to_numpy()[results[0].rows]
    mean = (results[0].scores + results[1].scores) / 2
    return scores_quality(mean, labels, np.asarray(results[0].rows), flipped)


def scores_quality(scores: np.ndarray, labels: np.ndarray, rows: np.ndarray, flipped: set[int]) -> dict[str, object]:
    """Confident learning by the package's own function on these out-of-sample scores, against the flipped rows."""
    from lora_sentiment.problems.confident import class_issues

    issues = class_issues(scores, labels, ["Negative", "Positive"])
    flagged = set(rows[issues.flagged].tolist())
    ranked = [int(r) for r in rows[np.argsort(-issues.score, kind="stable")]]
    accuracy = float((scores.argmax(axis=1) == labels).mean())
    return {**flag_quality(flagged, ranked, flipped), "estimated_noise_rate": issues.summary["estimated_noise_rate"],
            "scorer_quality": {"metric": "accuracy", "value": round(accuracy, 4)}}  # fmt: skip


def noise_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every noise benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    for name in ("--model", "--work", "--output"):
        parser.add_argument(name, required=True)
    return parser


def main() -> None:
    parser = noise_parser(__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--noise-seed", type=int, default=0)
    parser.add_argument("--scorers", nargs="+", default=["tfidf", "lora", "lora+tfidf"])
    parser.add_argument(
        "--members",
        action="store_true",
        help="lora+tfidf from the finished lora and tfidf audits in --work (no LoRA folds again)",
    )
    parser.add_argument(
        "--setting",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="more train settings of every audit and training, as YAML values (e.g. learning_rate=0.001 to resume an "
        "audit stored before that setting's default became auto)",
    )
    parser.add_argument("--train-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--max-eval-samples", type=int, default=500)
    parser.add_argument("--relabel", action="store_true",
                        help="also write each audit's --relabel file (flagged rows kept under the suggested label) "
                             "and train on it")  # fmt: skip
    parser.add_argument("--train-max-length", type=int, help="the trainings' max length [--max-length]")
    parser.add_argument("--train-on", nargs="+", help="only these training files (clean, noisy, cleaned-SCORER, "
                        "relabeled-SCORER) [all]")  # fmt: skip
    args = parser.parse_args()

    from lora_sentiment import TrainConfig, audit, train

    work, output = Path(args.work), Path(args.output)
    work.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["step"] for line in output.read_text().splitlines()} if output.exists() else set()
    noisy = noisy_file(work, args.rate, args.noise_seed)
    flipped = set(np.flatnonzero(pd.read_parquet(noisy)["flipped"].to_numpy()))
    common = dict(model=args.model, max_length=args.max_length, epochs=args.epochs,
                  eval_data=str(SHARED / "validation.parquet"), max_eval_samples=args.max_eval_samples,
                  **{k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.setting)})  # fmt: skip

    def record(step: str, **values: object) -> None:
        with output.open("a") as handle:
            handle.write(json.dumps({"step": step, "date": time.strftime("%Y-%m-%d"), **values}) + "\n")

    for scorer in args.scorers:
        step = f"audit-{scorer}"
        clean = work / f"cleaned-{scorer}.parquet"
        if step in done:
            continue
        started = time.perf_counter()
        config = TrainConfig(data=str(noisy), output_dir=str(work / step), seed=0, **common)
        members = [work / f"audit-{m}" / "summary.json" for m in ("lora", "tfidf")]
        if scorer == "lora+tfidf" and args.members and all(path.exists() for path in members):
            record(step, scorer=scorer, **from_members(config, work, noisy, flipped), from_members=True,
                   seconds=round(time.perf_counter() - started, 1))  # fmt: skip
            continue
        result = audit(config, folds=5, scorer=scorer, write_clean=str(clean), log=lambda _: None)
        if args.relabel:  # the same folds (resumed from the audit's folder), written the other way
            audit(config, folds=5, scorer=scorer, write_clean=str(work / f"relabeled-{scorer}.parquet"),
                  relabel=True, log=lambda _: None)  # fmt: skip
        flagged = {r["row"] for r in result.issues if r["kind"] == "label"}
        ranked = [r["row"] for r in sorted(result.issues, key=lambda r: -r["score"]) if r["kind"] == "label"]
        record(step, scorer=scorer, **flag_quality(flagged, ranked, flipped),
               seconds=round(time.perf_counter() - started, 1), fold_seconds=result.summary["seconds"],
               estimated_noise_rate=result.summary["labels"]["estimated_noise_rate"],
               scorer_quality=result.summary["scorer_quality"])  # fmt: skip

    clean_file = work / "clean.parquet"
    pd.read_parquet(SHARED / "train.parquet").to_parquet(clean_file)
    sources = {"clean": clean_file, "noisy": noisy}
    sources.update({f"cleaned-{s}": work / f"cleaned-{s}.parquet" for s in args.scorers})
    if args.relabel:
        sources.update({f"relabeled-{s}": work / f"relabeled-{s}.parquet" for s in args.scorers})
    for seed in args.train_seeds:
        for name, path in sources.items():
            step = f"train-{name}-{seed}"
            if step in done or not path.exists() or (args.train_on and name not in args.train_on):
                continue
            started = time.perf_counter()
            config = TrainConfig(data=str(path), output_dir=str(work / step), seed=seed, overwrite=True,
                                 baseline="none", examples=[], **{**common, "max_eval_samples": None,
                                 "max_length": args.train_max_length or args.max_length})  # fmt: skip
            result = train(config, log=lambda _: None)
            final = result.metrics.final
            record(step, data=name, seed=seed, rows=len(pd.read_parquet(path)), accuracy=final["accuracy"],
                   interval=final.get("intervals", {}).get("accuracy"),
                   seconds=round(time.perf_counter() - started, 1))  # fmt: skip


if __name__ == "__main__":
    main()
