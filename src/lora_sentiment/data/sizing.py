"""What the size of a run's labelled data decides: optimizer steps per epoch, and the `auto` learning rate and
evaluation share (the defaults). Here, below training, because carving the evaluation split out of the training
texts depends on it, and every reader of a run's data must carve it the same way.

A small single-label training set, one that reaching MIN_STEPS passes over SMALL_SET_EPOCHS times or more (80
texts at batch 16), trains at half the learning rate and holds out only a twentieth for evaluation (at least one
text a class; `--learning-rate auto`, `--eval-fraction auto`, the defaults): that many passes at 1e-3 fit the few
texts too fast, and an evaluation split of such a set is too small to decide anything, so its texts do more good
in training. Measured on MiniLM at 16 and 32 reviews per class, six draws each, scored on texts no draw took:
+4.9 and +1.8 points; at 128 per class the same settings were -0.8 (docs/benchmarks/small-data.md).

A single-label set of one batch (16 texts at batch 16) is also read at ONE_BATCH_MAX_LENGTH tokens a text
(`--max-length auto`): every one of its MIN_STEPS steps reads every text, so the length is the whole cost. At 8
IMDB reviews per class (MiniLM, six draws) 128 tokens scored 0.646 against 0.640 at 256 (by draw -8.2 to +8.4
points: inside the draws' noise) and 0.633 at 512 (three draws), and the `train` call took 38-40 s against 83-91
s at 256 (`avx512-bf16`); on the slower class's stand-in 70-72 s against 180-182 s, over the 2 minutes the issue
sets. At 32 per class (four batches) 256 tokens scored 0.756 against 0.762, inside the noise, with no time target
there: larger sets keep 512 (docs/benchmarks/small-data.md)."""

from __future__ import annotations

import math

from ..config import MAX_LENGTH, TrainConfig

# `--epochs auto` trains at least this many steps; measured at 8-32 reviews per class: docs/benchmarks/small-data.md
MIN_STEPS = 100
LEARNING_RATE, EVAL_FRACTION = 1e-3, 0.2
SMALL_SET_EPOCHS = 20
SMALL_SET_LEARNING_RATE, SMALL_SET_EVAL_FRACTION = 5e-4, 0.05
ONE_BATCH_MAX_LENGTH = 128


def steps_per_epoch(train_rows: int, batch_size: int, accumulation: int, processes: int = 1) -> int:
    """Optimizer steps in one epoch, as the Trainer counts them."""
    batches = math.ceil(train_rows / max(1, batch_size * processes))
    return max(1, math.ceil(batches / accumulation))


def small_set(config: TrainConfig, texts: int) -> bool:
    """Whether `--epochs auto` passes over `texts` training texts SMALL_SET_EPOCHS times or more."""
    per_epoch = steps_per_epoch(texts, config.batch_size, config.gradient_accumulation_steps)
    return config.epochs == "auto" and per_epoch * SMALL_SET_EPOCHS <= MIN_STEPS


def one_batch(config: TrainConfig, texts: int) -> bool:
    """Whether `--epochs auto` reads all of `texts` training texts in every optimizer step."""
    per_epoch = steps_per_epoch(texts, config.batch_size, config.gradient_accumulation_steps)
    return config.epochs == "auto" and per_epoch == 1


def sized_settings(config: TrainConfig, texts: int, classes: int | None) -> dict[str, float | int]:
    """`auto` learning rate, evaluation share and length, decided on the labelled training texts before any is
    carved out (or as many as --max-train-samples keeps). The small-set values only for single-label data
    (`classes`: how many its texts have; None otherwise), where they were measured; the share held out is at
    least one text of each class, which a stratified split needs."""
    if config.max_train_samples is not None:
        texts = min(texts, config.max_train_samples)
    small = classes is not None and texts > 0 and small_set(config, texts)
    settings: dict[str, float | int] = {}
    if config.max_length == "auto":
        short = small and one_batch(config, texts) and (config.head_tokens or 0) < ONE_BATCH_MAX_LENGTH - 2
        settings["max_length"] = ONE_BATCH_MAX_LENGTH if short else MAX_LENGTH
    if config.learning_rate == "auto":
        settings["learning_rate"] = SMALL_SET_LEARNING_RATE if small else LEARNING_RATE
    if config.eval_fraction == "auto":
        settings["eval_fraction"] = max(SMALL_SET_EVAL_FRACTION, classes / texts) if small else EVAL_FRACTION
    return settings
