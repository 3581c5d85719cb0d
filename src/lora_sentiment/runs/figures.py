"""Report stage, figures: the run's learning curves, and its confusion matrix or per-label F1, as PNGs.

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


def plot_reliability(calibration: dict[str, Any], path: Path) -> Path:
    """The reliability diagram: each equal-mass bin's mean confidence against how often it was right, before
    and after calibration (cross-fitted), beside the diagonal a calibrated model sits on."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    for key, color in (("before", "tab:orange"), ("after", "tab:blue")):
        quality = calibration[key]
        confidence, observed, _ = zip(*quality["reliability"])
        ax.plot(confidence, observed, marker="o", color=color, label=f"{key} (ECE {quality['ece']:.3f})")
    what = "tag probabilities" if calibration["method"] == "tag-temperature" else "confidence of the predicted class"
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"{what} (bin mean)", ylabel="observed frequency",
           title="Reliability (evaluation set, cross-fitted)")  # fmt: skip
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_risk_coverage(curve: dict[str, Any], path: Path) -> Path:
    """The selective metric of the answers given against the share of texts answered, the least sure left out
    first: where to set --min-confidence for the accuracy a user needs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    coverage, score = zip(*curve["curve"])
    ax.plot(coverage, score, color="tab:blue")
    for row in curve["table"]:
        flag = curve.get("flag", "min_confidence")
        mark = f"P {row[flag]:.2f}" if flag == "min_confidence" else f"W {row[flag]:.3g}"
        ax.annotate(mark, (row["coverage"], row[curve["metric"]]), fontsize=7,
                    textcoords="offset points", xytext=(-10, 6))  # fmt: skip
        ax.plot(row["coverage"], row[curve["metric"]], marker="o", color="tab:blue")
    ax.set(xlim=(0, 1.02), xlabel="share of texts answered (the least sure left out first)",
           ylabel=f"{curve['metric']} of the answers given", title="Risk-coverage (evaluation set)")  # fmt: skip
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
