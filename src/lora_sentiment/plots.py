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


SUMMARY_COLUMNS = {
    "single-label": ("accuracy", "f1"),
    "multi-label": ("f1_macro", "f1_micro"),
    "regression": ("spearman", "mae"),
}
FINAL_SCORES = {
    "single-label": ("accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc"),
    "multi-label": ("f1_macro", "f1_micro", "accuracy", "hamming_loss"),
    "regression": ("spearman", "pearson", "mae", "rmse"),
}


def summary(config: Any, space: Any, metrics: Any) -> str:
    """What a user wants to see first: the recipe, the per-epoch curve, the final scores, the examples.
    `space` is the run's LabelSpace."""
    final, train, names = metrics.final, metrics.train, space.names
    columns = SUMMARY_COLUMNS[space.problem_type]
    lines = [
        f"Model      {config.model}  "
        f"(LoRA r={config.lora_r}, alpha={config.lora_alpha:g} on {', '.join(config.lora_targets or [])})",
        f"Data       {config.data}  ({train.train_samples or '?'} train / {final.samples or '?'} eval, "
        f"max {config.max_length} tokens, {space.problem_type}, labels {', '.join(names[:12])})",
        f"Training   {train.epochs:g} epochs in {train.precision or '?'}, {_fmt(train.runtime_s, '.0f')} s, "
        f"{train.trainable_parameters:,} of {train.total_parameters:,} parameters trained",
        "",
        f"{'epoch':>6} {'train loss':>11} {'eval loss':>10} " + " ".join(f"{c:>9}" for c in columns),
    ]
    for row in metrics.history:
        cells = [_fmt(row.get(key)) for key in ("train_loss", "loss", *columns)]
        lines.append(f"{row.epoch:>6g} {cells[0]:>11} {cells[1]:>10} " + " ".join(f"{c:>9}" for c in cells[2:]))
    scores = ", ".join(f"{key} {_fmt(final.get(key))}" for key in FINAL_SCORES[space.problem_type] if key in final)
    lines += ["", f"Kept epoch {_fmt(final.epoch, 'g')}: {scores}"]
    if metrics.baseline:
        keys = [key for key in FINAL_SCORES[space.problem_type] if key in metrics.baseline]
        lines.append("Baseline (TF-IDF + linear): " + ", ".join(f"{k} {_fmt(metrics.baseline[k])}" for k in keys))
    lines += _confusion_lines(final.confusion_matrix, names) if final.confusion_matrix else []
    if final.get("per_label") and space.problem_type == "multi-label":
        lines += per_label_lines(final, space, limit=12).splitlines()
    examples = metrics.examples
    if examples.after:
        lines.append("Examples (before -> after training):")
        for before, after in zip(examples.before, examples.after):
            lines.append(f"  {before['label']:>8} -> {after['label']:<8} {after['text']}")
    return "\n".join(lines)


def _confusion_lines(matrix: Sequence[Sequence[int]], label_names: Sequence[str]) -> list[str]:
    width = max(8, *(len(n) for n in label_names))
    lines = [
        "Confusion (rows true, columns predicted):",
        " " * (width + 2) + " ".join(f"{n:>{width}}" for n in label_names),
    ]
    return lines + [
        f"  {name:<{width}}" + " ".join(f"{v:>{width}}" for v in row) for name, row in zip(label_names, matrix)
    ]


def plot_per_label_f1(per_label: dict[str, dict[str, float]], path: Path) -> Path:
    """Multi-label's counterpart of the confusion matrix: F1 of each tag, with its support."""
    plt = _pyplot()
    names = sorted(per_label, key=lambda n: per_label[n]["f1"])
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * len(names) + 1)))
    ax.barh(names, [per_label[n]["f1"] for n in names], color="tab:blue")
    for i, name in enumerate(names):
        ax.text(per_label[name]["f1"] + 0.01, i, f"{per_label[name]['support']}", va="center", fontsize=7)
    ax.set(xlim=(0, 1.1), xlabel="F1 (evaluation set, kept epoch; number: support)", title="F1 per label")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def headline(final: dict[str, Any], space: Any) -> str:
    """The scores a user reads first, for the log line at the end of training."""
    if space.problem_type == "multi-label":
        return f"Macro-F1 {final['f1_macro']:.4f}, micro-F1 {final['f1_micro']:.4f}"
    if space.problem_type == "regression":
        return f"Spearman {final['spearman']:.4f}, MAE {final['mae']:.4f}"
    return f"Accuracy {final['accuracy']:.4f}, F1 {final['f1']:.4f}"


def per_label_lines(final: dict[str, Any], space: Any, limit: int = 40) -> str:
    """The per-label table as text (precision, recall, F1, support; and thresholds for tags)."""
    table = final.get("per_label") or {}
    if not table:
        return ""
    width = max(8, *(len(name) for name in table))
    tags = space.problem_type == "multi-label"
    lines = [f"{'label':<{width}} precision  recall      f1  support" + ("  threshold" if tags else "")]
    for name, row in list(table.items())[:limit]:
        line = f"{name:<{width}} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>7.3f} {row['support']:>8}"
        lines.append(line + (f" {row['threshold']:>10.3f}" if tags else ""))
    return "\n".join(lines)
