"""Which evaluation should pick the epoch a run keeps? Every epoch of `lora-sentiment train` (defaults, a fixed
number of epochs so none is cut short) scored on the run's own evaluation split, where the choice is made, and on
the shared validation set, which no choice sees (at 256 tokens unless --max-length says otherwise):

- loss: the evaluation split's cross-entropy (what `--metric-for-best-model auto` keeps single-label runs by);
- calibrated_loss: the same after a temperature fitted on that split (what a user gets once the run calibrates);
- accuracy on the evaluation split;

and, per epoch, the accuracy on the 1,000 validation reviews. A criterion is good if the epoch it picks scores
well there. The reviews are scored here with head-only truncation to the run's length (the run itself reads head+tail),
the same for every epoch: the accuracies compare epochs, and sit a point or two under what `predict` gives.

    python benchmarks/epoch_selection.py --model "$MINILM" --per-class 980 --seeds 0 1 2 --epochs 3 \
        --output benchmarks/results/epoch-selection-amx-cpu-2026-12-03.jsonl

One JSON line per (size, seed, epoch).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from small_data import MAX_LENGTH, draw

from lora_sentiment.modeling.cpu import this_cpu

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb-sample"


def logits_of(model, tokenizer, texts: list[str], max_length: int, batch: int = 32) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = []
    order = np.argsort([len(t) for t in texts])  # length-sorted batches: less padding
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=this_cpu().bf16_units):
        for start in range(0, len(texts), batch):
            chunk = [texts[i] for i in order[start : start + batch]]
            encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            out.append(model(**encoded).logits.float().numpy())
    model.train(was_training)
    logits = np.concatenate(out)
    restored = np.empty_like(logits)
    restored[order] = logits
    return restored


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(labels)), labels].mean())


def calibrated_nll(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    fit = minimize_scalar(lambda t: nll(logits, labels, t), bounds=(0.05, 20.0), method="bounded")
    return float(fit.fun), float(fit.x)


def run(model: str, drawn: pd.DataFrame, val: pd.DataFrame, seed: int, epochs: int, max_length: int) -> list[dict]:
    from transformers import TrainerCallback

    import lora_sentiment.training.recipe as recipe
    from lora_sentiment import TrainConfig, train

    rows: list[dict] = []

    class Scorer(TrainerCallback):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            tokenizer = self.trainer.processing_class
            evaluation = self.trainer.eval_dataset
            texts = [tokenizer.decode(list(ids), skip_special_tokens=True) for ids in evaluation["input_ids"]]
            labels = np.asarray(evaluation["label" if "label" in evaluation.column_names else "labels"])
            own = logits_of(model, tokenizer, texts, max_length)
            held_out = logits_of(model, tokenizer, val.text.tolist(), max_length)
            calibrated, temperature = calibrated_nll(own, labels)
            rows.append({"epoch": round(state.epoch), "eval_samples": len(labels), "loss": nll(own, labels),
                         "calibrated_loss": calibrated, "temperature": temperature,
                         "eval_accuracy": float((own.argmax(1) == labels).mean()),
                         "val_accuracy": float((held_out.argmax(1) == val.label.to_numpy()).mean())})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)

    original = recipe.build_trainer

    def with_scorer(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.add_callback(Scorer(trainer))
        return trainer

    recipe.build_trainer = with_scorer
    try:
        with tempfile.TemporaryDirectory() as scratch:
            data = Path(scratch) / "train.parquet"
            drawn[["text", "label"]].to_parquet(data)
            config = TrainConfig(data=str(data), model=model, max_length=max_length, seed=seed, baseline="none",
                                 output_dir=str(Path(scratch) / "run"), examples=["fine"], epochs=epochs)  # fmt: skip
            train(config, log=lambda _: None)
    finally:
        recipe.build_trainer = original
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--per-class", type=int, nargs="+", default=[980])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="train's default is 512")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    train_df = pd.read_parquet(SHARED / "train.parquet")
    val = pd.read_parquet(SHARED / "validation.parquet")
    for per_class in args.per_class:
        for seed in args.seeds:
            started = time.perf_counter()
            rows = run(args.model, draw(train_df, per_class, seed), val, seed, args.epochs, args.max_length)
            seconds = round(time.perf_counter() - started)
            with open(args.output, "a", encoding="utf-8") as out:
                for row in rows:
                    row = {"per_class": per_class, "seed": seed, "max_length": args.max_length, **row,
                           "cpu_class": this_cpu().name, "run_seconds": seconds,
                           "date": time.strftime("%Y-%m-%d")}  # fmt: skip
                    out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
