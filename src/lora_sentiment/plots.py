"""Report stage: the run's learning curves and confusion matrix as PNGs, and a one-screen text summary.

Everything is drawn from a run's metrics record (metrics.json), so `lora-sentiment report RUN_DIR` can redraw
any finished run; where the files go is the run's business (run.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib  # loaded only when a figure is drawn: `report --no-plots` and the card need none

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(metrics: Any, path: Path, metric: str = "accuracy") -> Path:
    """Training loss (every logged step) and evaluation loss per epoch on the left; the eval metric on the right."""
    plt = _pyplot()
    history = metrics.history
    steps = [(e["epoch"], e["loss"]) for e in metrics.log_history if "loss" in e and "eval_loss" not in e]
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
    if steps:
        loss_ax.plot(*zip(*steps), label="train loss (logged steps)", color="tab:blue", alpha=0.5)
    epochs = [row["epoch"] for row in history]
    for key, label, color in (
        ("train_loss", "train loss (epoch mean)", "tab:blue"),
        ("loss", "eval loss", "tab:orange"),
    ):
        points = [(e, row[key]) for e, row in zip(epochs, history) if row.get(key) is not None]
        if points:
            loss_ax.plot(*zip(*points), marker="o", label=label, color=color)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss_ax.legend()
    loss_ax.grid(alpha=0.3)
    points = [(e, row[metric]) for e, row in zip(epochs, history) if row.get(metric) is not None]
    if points:
        metric_ax.plot(*zip(*points), marker="o", color="tab:green", label=f"eval {metric}")
    best = metrics.final.epoch
    if best is not None:
        metric_ax.axvline(best, color="grey", linestyle="--", label=f"kept: epoch {best:g}")
    metric_ax.set(xlabel="epoch", ylabel=metric, title=f"Evaluation {metric}")
    metric_ax.legend()
    metric_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str], path: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(4.0, 1.2 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(label_names)).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title("Confusion matrix\n(evaluation set, kept epoch)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summary(config: Any, label_names: Sequence[str], metrics: Any) -> str:
    """What a user wants to see first: the recipe, the per-epoch curve, the final scores, the examples."""
    final, train = metrics.final, metrics.train
    lines = [
        f"Model      {config.model}  "
        f"(LoRA r={config.lora_r}, alpha={config.lora_alpha:g} on {', '.join(config.lora_targets or [])})",
        f"Data       {config.data}  ({train.train_samples or '?'} train / {final.samples or '?'} eval, "
        f"max {config.max_length} tokens, labels {', '.join(label_names)})",
        f"Training   {train.epochs:g} epochs in {train.precision or '?'}, {_fmt(train.runtime_s, '.0f')} s, "
        f"{train.trainable_parameters:,} of {train.total_parameters:,} parameters trained",
        "",
        f"{'epoch':>6} {'train loss':>11} {'eval loss':>10} {'accuracy':>9} {'f1':>7}",
    ]
    for row in metrics.history:
        cells = (_fmt(row.get(key)) for key in ("train_loss", "loss", "accuracy", "f1"))
        lines.append(f"{row.epoch:>6g} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, (11, 10, 9, 7))))
    scores = ", ".join(
        f"{key} {_fmt(final.get(key))}" for key in ("accuracy", "f1", "precision", "recall", "roc_auc") if key in final
    )
    lines += ["", f"Kept epoch {_fmt(final.epoch, 'g')}: {scores}"]
    matrix = final.confusion_matrix
    if matrix:
        width = max(8, *(len(n) for n in label_names))
        lines.append("Confusion (rows true, columns predicted):")
        lines.append(" " * (width + 2) + " ".join(f"{n:>{width}}" for n in label_names))
        lines += [
            f"  {name:<{width}}" + " ".join(f"{v:>{width}}" for v in row) for name, row in zip(label_names, matrix)
        ]
    examples = metrics.examples
    if examples.after:
        lines.append("Examples (before -> after training):")
        for before, after in zip(examples.before, examples.after):
            lines.append(f"  {before['label']:>8} -> {after['label']:<8} {after['text']}")
    return "\n".join(lines)


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)
