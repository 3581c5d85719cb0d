"""The tutorial's recipe, written once: how it trains (the settings below, through our Trainer path) and how it
predicts (the unmerged PEFT model in fp32, 4 reviews at a time, in input order). `bench` and `bench-engines`
measure this project's paths against it; `python -m lora_sentiment.bench.tutorial RUN BASE IN.csv OUT.csv
MAX_LENGTH [NUM_LABELS]` runs its prediction as a whole script (2 labels unless given)."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

from ..modeling.targets import DEFAULT_TARGETS


def tutorial_settings(settings: dict[str, Any], model_type: str) -> dict[str, Any]:
    """The tutorial's recipe as a user would run it today: Trainer, fp32, batch 4, r=4 on the query
    projection, left truncation, the model's own dropout and attention, random batches."""
    query = DEFAULT_TARGETS.get(model_type, ["query"])[0]
    return dict(
        settings,
        lora_r=4, lora_alpha=32, lora_dropout=0.01, lora_targets=[query],
        learning_rate=1e-3, batch_size=4, eval_batch_size=4, weight_decay=0.01, warmup_ratio=0.0,
        truncation="tail", strip_html=False, base_dropout="keep", group_by_length=False, attention="sdpa",
        precision="fp32", pooling="first-token",
    )  # fmt: skip


def process_like_tutorial() -> None:
    """Train with glibc's allocator settings and the model's full last layer, as the tutorial's notebook does:
    keeping freed memory between steps (training/memory.py) and running the last layer on the first token only
    (modeling/first_token.py) are part of our recipe, not the tutorial's. For a fresh benchmark process only: it
    replaces the recipe's memory callbacks and the model loader's last-layer step for the rest of the process."""
    from ..modeling import model
    from ..training import recipe

    recipe.memory_callbacks = list
    model.read_first_token_only = lambda _: False


def load_like_tutorial(run_dir: str, base_model: str, num_labels: int = 2) -> tuple[Any, Any]:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    tokenizer.truncation_side = "left"
    # A base that ships a head of other classes (the tests' tiny models) gets a fresh one: the adapter brings its own.
    base = AutoModelForSequenceClassification.from_pretrained(
        base_model, num_labels=num_labels, ignore_mismatched_sizes=True
    )
    return PeftModel.from_pretrained(base, run_dir).eval(), tokenizer


def predict_like_tutorial(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> tuple[list[int], float]:
    """The labels of `texts`, and the seconds the loop took."""
    device = next(model.parameters()).device
    predicted: list[int] = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(texts), 4):
            batch = tokenizer(texts[i : i + 4], truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt").to(device)  # fmt: skip
            predicted += model(**batch).logits.argmax(-1).tolist()
    return predicted, time.perf_counter() - start


def main(argv: list[str]) -> int:
    """The whole script: read the file, load, predict, write the predictions, report peak RSS on stderr."""
    import pandas as pd

    from ..measure import peak_rss_mb

    run, base, source, target, max_length, *num_labels = argv
    frame = pd.read_csv(source)
    model, tokenizer = load_like_tutorial(run, base, int(num_labels[0]) if num_labels else 2)
    frame["predicted_label"], _ = predict_like_tutorial(model, tokenizer, frame["text"].tolist(), int(max_length))
    frame.to_csv(target, index=False)
    print("PEAK_RSS_MB", peak_rss_mb(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
