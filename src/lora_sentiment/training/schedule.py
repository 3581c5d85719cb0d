"""How long to train and how to pick what is kept, from the data's size (`--epochs auto`, the default).

A fixed number of epochs means a number of optimizer steps that grows with the data: 3 epochs of 16 reviews at batch
16 are 3 steps, too few for anything to be learned. So `auto` counts steps: at least MIN_STEPS (or the problem
type's own `min_steps`: multi-label's tags learn from their own few positives), and never fewer than MIN_EPOCHS
epochs (the 3 epochs the defaults were tuned with on 2,000 reviews, unchanged from about 1,000 texts up). With an
evaluation split big enough to tell epochs apart (EVAL_TO_DECIDE texts), training keeps the best evaluation's state
and stops after PATIENCE evaluations without improvement; inside those 3 epochs that never happens, since one
evaluation's dip is not a trend (a schedule of more evaluations, e.g. at a larger batch, still stops early). Below
that size the scores rest on too few texts to choose between epochs (their 95 % interval is wider than the
differences between epochs), so the schedule is fixed and the last state is kept. Many short epochs are evaluated
every few epochs (at most EVALUATIONS times), not after each. A small set's `auto` learning rate and evaluation
share: data/sizing.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import TrainConfig
from ..data.sizing import MIN_STEPS, steps_per_epoch
from ..runs.summary import epochs_text

MIN_EPOCHS = 3
EVAL_TO_DECIDE = 200  # texts: a 95 % interval on accuracy near 0.8 is then about ±5.5 points
EVALUATIONS = 10
# Evaluations without improvement before stopping (`auto` with a large evaluation split). At 1: at 512 tokens two of
# three 980-per-class IMDB draws dipped at epoch 2 and stopped, keeping epoch 1; trained on, both kept epoch 3, +1.6
# points on the mean of the three (docs/benchmarks/small-data.md).
PATIENCE = 2


@dataclass(frozen=True)
class Schedule:
    epochs: float
    steps_per_epoch: int
    eval_every: int  # epochs between evaluations (and checkpoints)
    keep: str  # "best": the best evaluation's state; "last": the final state
    patience: int | None  # early stopping, in evaluations
    eval_rows: int

    @property
    def evaluations(self) -> int:
        return max(1, int(self.epochs // self.eval_every))

    @property
    def steps(self) -> int:
        return math.ceil(self.epochs * self.steps_per_epoch)

    def describe(self) -> str:
        what = f"{epochs_text(self.epochs)} ({self.steps} optimizer steps)"
        every = f"evaluating every {self.eval_every} epochs" if self.eval_every > 1 else "evaluating each epoch"
        if self.keep == "last":
            return f"{what}, {every}, keeping the last state"
        plural = "s" if self.patience and self.patience > 1 else ""
        stop = f", stopping after {self.patience} evaluation{plural} without improvement" if self.patience else ""
        return f"{what}, {every}{stop}, keeping the best"


def plan(
    config: TrainConfig, train_rows: int, eval_rows: int, processes: int = 1, min_steps: int = MIN_STEPS
) -> Schedule:
    """The schedule for `config` on splits of these sizes: `--epochs auto` by the rule above (at least `min_steps`:
    the problem type's own where it sets one), a given number of epochs as given (each evaluated; the best kept,
    stopping early only with --early-stopping-patience)."""
    per_epoch = steps_per_epoch(train_rows, config.batch_size, config.gradient_accumulation_steps, processes)
    patience = config.early_stopping_patience
    if config.epochs != "auto":
        return Schedule(float(config.epochs), per_epoch, 1, "best", patience, eval_rows)
    epochs = max(MIN_EPOCHS, math.ceil(min_steps / per_epoch))
    every = math.ceil(epochs / EVALUATIONS)
    epochs = every * math.ceil(epochs / every)  # the last epoch is evaluated: it may be the one kept
    if eval_rows < EVAL_TO_DECIDE:
        return Schedule(float(epochs), per_epoch, every, "last", None, eval_rows)
    return Schedule(float(epochs), per_epoch, every, "best", patience or PATIENCE, eval_rows)
