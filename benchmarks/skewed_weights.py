"""Should skewed classes get `--class-weights balanced` by default? IMDB reviews with the positive ones made rare,
a MiniLM run trained with `train`'s defaults and no weights, and one with balanced weights, on the same texts.

    python benchmarks/skewed_weights.py --model "$MINILM" --shares 0.05 0.10 --seeds 0 1 2 \
        --output benchmarks/results/skewed-weights-CLASS-cpu-DATE.jsonl

Each seed draws, from the shared training file, 600 training reviews and 400 evaluation reviews (the run's
`--eval-data`: its kept epoch and calibration) with the positive share S, as a user's skewed data would come. Each
run then reads the 1,000 balanced validation reviews once: its recall of either class there is what it does on the
skewed population too (recall does not depend on the shares), and with the share S the population's precision,
F1 per class, macro-F1 and accuracy follow (precision of the rare class = S x recall / (S x recall + (1 - S) x false
positive rate)), from 500 texts of each class where a skewed test set of 1,000 would hold 50 of the rare one. One
JSON line per run, then one per share with the paired difference (balanced minus none) over the seeds.

    python benchmarks/skewed_weights.py --model "$MINILM" --goemotions ../shared/data/goemotions \
        --classes neutral gratitude anger fear --seeds 0 1 2 --max-length 64 --output ...

Several classes as they come: the GoEmotions comments with one emotion among `--classes`, at their own shares
(neutral 79 %, fear 3 % for the four above); per seed 1,000 training and 400 evaluation comments drawn at those
shares, each run scored on every such validation comment (macro-F1 and per-class recall as they fall)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from jsonl import emit

from lora_sentiment import TrainConfig, load_classifier, train
from lora_sentiment.modeling.cpu import this_cpu

TRAIN, EVAL = 600, 400


def population(recall_rare: float, recall_common: float, share: float) -> dict[str, float]:
    """The scores on texts whose rare class has `share`, from each class's recall."""
    rare_found, common_missed = share * recall_rare, (1 - share) * (1 - recall_common)
    common_found, rare_missed = (1 - share) * recall_common, share * (1 - recall_rare)

    def f1(found: float, wrongly: float, missed: float) -> float:
        return 2 * found / (2 * found + wrongly + missed) if found else 0.0

    rare, common = f1(rare_found, common_missed, rare_missed), f1(common_found, rare_missed, common_missed)
    return {"f1_rare": rare, "f1_common": common, "f1_macro": (rare + common) / 2,
            "accuracy": rare_found + common_found}  # fmt: skip


def drawn(frame: pd.DataFrame, share: float, seed: int, folder: Path) -> tuple[Path, Path]:
    """Training and evaluation files with the positive share `share`, no review in both."""
    rng = np.random.default_rng(seed)
    rare = frame[frame.label == 1].sample(frac=1, random_state=int(rng.integers(1 << 31)))
    common = frame[frame.label == 0].sample(frac=1, random_state=int(rng.integers(1 << 31)))
    files = []
    for name, size, start in (("train", TRAIN, (0, 0)), ("eval", EVAL, (round(TRAIN * share), TRAIN))):
        n_rare = round(size * share)
        part = pd.concat([rare.iloc[start[0] : start[0] + n_rare], common.iloc[start[1] : start[1] + size - n_rare]])
        path = folder / f"{name}-{share}-{seed}.parquet"
        part.sample(frac=1, random_state=seed)[["text", "label"]].to_parquet(path)
        files.append(path)
    return files[0], files[1]


def goemotions(args: argparse.Namespace, folder: Path, common: dict) -> None:
    """The several-class experiment: natural shares, scored on the validation comments themselves."""
    from sklearn.metrics import f1_score, recall_score

    def single(split: str) -> pd.DataFrame:
        frame = pd.read_parquet(args.goemotions / f"{split}.parquet")
        frame = frame[frame["labels"].map(len) == 1].assign(label=lambda f: f["labels"].map(lambda tags: tags[0]))
        return frame[frame.label.isin(args.classes)][["text", "label"]]

    train_rows, unseen = single("train"), single("validation")
    truth = unseen.label.to_numpy()
    macro: dict[str, list[float]] = {"none": [], "balanced": []}
    for seed in args.seeds:
        drawn_rows = train_rows.sample(n=1400, random_state=seed)
        train_file, eval_file = folder / f"ge-train-{seed}.parquet", folder / f"ge-eval-{seed}.parquet"
        drawn_rows.iloc[:1000].to_parquet(train_file)
        drawn_rows.iloc[1000:].to_parquet(eval_file)
        for weights in ("none", "balanced"):
            started, out = time.perf_counter(), folder / f"ge-run-{seed}-{weights}"
            config = TrainConfig(model=args.model, data=str(train_file), eval_data=str(eval_file), seed=seed,
                                 max_length=args.max_length, class_weights=weights, output_dir=str(out))  # fmt: skip
            train(config, log=lambda _: None, step_lines=False)
            classifier = load_classifier(out)
            names = np.asarray(classifier.space.names)
            answers = names[classifier.predict_scores(unseen.text.tolist()).argmax(axis=1)]
            recall = recall_score(truth, answers, labels=args.classes, average=None, zero_division=0)
            score = float(f1_score(truth, answers, labels=args.classes, average="macro", zero_division=0))
            macro[weights].append(score)
            emit({"data": "goemotions", "classes": args.classes, "seed": seed, "class_weights": weights, **common,
                  "validation_texts": len(truth), "f1_macro": round(score, 4),
                  "accuracy": round(float((answers == truth).mean()), 4),
                  "recall": {c: round(float(r), 4) for c, r in zip(args.classes, recall)},
                  "seconds": round(time.perf_counter() - started)}, args.output)  # fmt: skip
    difference = np.subtract(macro["balanced"], macro["none"])
    emit({"data": "goemotions", "classes": args.classes, "seeds": args.seeds, **common,
          "f1_macro_none": [round(x, 4) for x in macro["none"]],
          "f1_macro_balanced": [round(x, 4) for x in macro["balanced"]],
          "balanced_minus_none": [round(float(x), 4) for x in difference]}, args.output)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/imdb-sample")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--goemotions", type=Path, help="run the several-class experiment on this folder instead")
    parser.add_argument("--classes", nargs="+", default=["neutral", "gratitude", "anger", "fear"])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    common = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().name, "max_length": args.max_length}
    if args.goemotions:
        with tempfile.TemporaryDirectory() as scratch:
            goemotions(args, Path(scratch), common)
        return
    frame = pd.read_parquet(args.data / "train.parquet")
    unseen = pd.read_parquet(args.data / "validation.parquet")
    truth = unseen.label.to_numpy()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for share in args.shares:
            macro: dict[str, list[float]] = {"none": [], "balanced": []}
            for seed in args.seeds:
                train_file, eval_file = drawn(frame, share, seed, folder)
                for weights in ("none", "balanced"):
                    started = time.perf_counter()
                    out = folder / f"run-{share}-{seed}-{weights}"
                    config = TrainConfig(model=args.model, data=str(train_file), eval_data=str(eval_file),
                                         max_length=args.max_length, class_weights=weights, seed=seed,
                                         output_dir=str(out))  # fmt: skip
                    result = train(config, log=lambda _: None, step_lines=False)
                    answers = load_classifier(out).predict_scores(unseen.text.tolist()).argmax(axis=1)
                    recall_rare = float((answers[truth == 1] == 1).mean())
                    recall_common = float((answers[truth == 0] == 0).mean())
                    scores = population(recall_rare, recall_common, share)
                    macro[weights].append(scores["f1_macro"])
                    final = result.metrics.final
                    emit({"share": share, "seed": seed, "class_weights": weights, **common,
                          "recall_rare": round(recall_rare, 4), "recall_common": round(recall_common, 4),
                          **{k: round(v, 4) for k, v in scores.items()},
                          "eval_split_f1_macro": round(final["f1_macro"], 4),
                          "eval_split_accuracy": round(final["accuracy"], 4),
                          "seconds": round(time.perf_counter() - started)}, args.output)  # fmt: skip
            difference = np.subtract(macro["balanced"], macro["none"])
            emit({"share": share, "seeds": args.seeds, **common, "f1_macro_none": [round(x, 4) for x in macro["none"]],
                  "f1_macro_balanced": [round(x, 4) for x in macro["balanced"]],
                  "balanced_minus_none": [round(float(x), 4) for x in difference],
                  "mean_difference": round(float(difference.mean()), 4)}, args.output)  # fmt: skip


if __name__ == "__main__":
    main()
