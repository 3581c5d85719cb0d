"""What `audit` writes: issues.csv, summary.json, the noise-matrix plot (a residual plot for numbers), the screen
summary, and `--write-clean`'s file. Each file appears whole or not at all."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import staged_file, staged_path
from ..config import TrainConfig
from ..problems.base import problem_type
from ..problems.space import LabelSpace
from .findings import COLUMNS, Finding

ISSUES_FILE = "issues.csv"
SUMMARY_FILE = "summary.json"
PLOT_FILES = {"noise_matrix": "noise_matrix.png", "tag_noise": "noise_matrix.png", "residuals": "residuals.png"}
CLEAN_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def write_issues(path: Path, rows: list[dict[str, Any]]) -> None:
    with staged_file(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    with staged_file(path) as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")


def write_plot(path: Path, space: LabelSpace, summary: dict[str, Any],
               values: tuple[np.ndarray, np.ndarray] | None) -> None:  # fmt: skip
    """`values`: for numbers, the out-of-sample predictions and the given values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = summary["labels"]
    kind = space.problem.audit_figure
    if kind == "noise_matrix":
        figure = _joint_figure(plt, np.asarray(labels["estimated_joint"]), space.names)
    elif kind == "tag_noise":
        figure = _tag_figure(plt, labels["per_tag"])
    else:
        figure = _residual_figure(plt, values, labels["residuals"])
    with staged_path(path, ".png") as partial:
        figure.savefig(partial, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _joint_figure(plt: Any, joint: np.ndarray, names: list[str]) -> Any:
    """P(true label | given label): the calibrated confident joint, each row divided by its sum."""
    rows = joint.sum(axis=1, keepdims=True)
    matrix = np.divide(joint, rows, out=np.zeros_like(joint), where=rows > 0)
    size = min(4 + 0.35 * len(names), 16)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("true label (estimated)")
    axes.set_ylabel("given label")
    axes.set_title("Estimated noise: P(true | given), confident learning")
    if len(names) <= 12:
        for (i, j), value in np.ndenumerate(matrix):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    return figure


def _tag_figure(plt: Any, per_tag: dict[str, dict[str, Any]]) -> Any:
    names = list(per_tag)
    given = [per_tag[n]["noise_rate_given"] or 0 for n in names]
    missing = [per_tag[n]["noise_rate_not_given"] or 0 for n in names]
    figure, axes = plt.subplots(figsize=(max(6, 0.4 * len(names)), 4))
    x = np.arange(len(names))
    axes.bar(x - 0.2, given, 0.4, label="given, likely absent")
    axes.bar(x + 0.2, missing, 0.4, label="not given, likely present")
    axes.set_xticks(x, names, rotation=60, ha="right")
    axes.set_ylabel("estimated noise rate")
    axes.set_title("Estimated noise per tag, confident learning")
    axes.legend()
    return figure


def _residual_figure(plt: Any, values: tuple[np.ndarray, np.ndarray] | None, stats: dict[str, Any]) -> Any:
    """Each text's residual against its prediction, with each band's flagging limits."""
    figure, axes = plt.subplots(figsize=(6, 4))
    predicted, given = values if values is not None else (np.zeros(0), np.zeros(0))
    residual = given - predicted
    low, high = (float(predicted.min()), float(predicted.max())) if len(predicted) else (0.0, 1.0)
    axes.scatter(predicted, residual, s=6, color="tab:blue", alpha=0.5)
    for band in stats["bands"]:
        start = band["from"] if band["from"] is not None else low
        end = band["to"] if band["to"] is not None else high
        cut = stats["cutoff_z"] * band["robust_sd"]
        for edge in (band["median"] - cut, band["median"] + cut):
            axes.plot([start, end], [edge, edge], color="tab:red", linestyle="--")
    axes.set_xlabel("out-of-sample prediction")
    axes.set_ylabel("given value - prediction")
    axes.set_title("Cross-fitted residuals; flagged beyond the dashed lines")
    return figure


def _repeated(repeats: int) -> str:
    return f", {repeats} cross-fittings averaged" if repeats > 1 else ""


def screen(summary: dict[str, Any], rows: list[dict[str, Any]], top: int = 10) -> str:
    """The one-screen summary printed at the end."""
    counts, labels = summary["counts"], summary["labels"]
    lines = [
        f"Audit of {summary['texts']} training texts ({summary['problem_type']}) scored out of sample by "
        f"{summary['scorer_name']} over {summary['folds']} folds{_repeated(summary.get('repeats', 1))} "
        f"({_quality(summary['scorer_quality'])})",
        f"Label issues: {counts['label']} ({counts['label'] / max(summary['texts'], 1):.1%} of the texts); "
        f"estimated noise rate {_percent(labels.get('estimated_noise_rate'))}"
        + problem_type(summary["problem_type"]).audit_noise_of,
    ]
    for name, entry in list((labels.get("per_class") or {}).items())[:8]:
        rate = _percent(entry["noise_rate"])
        lines.append(f"  {name}: {entry['flagged']} of {entry['texts']} flagged, noise rate {rate}")
    tags = labels.get("per_tag") or {}
    for name in sorted(tags, key=lambda n: -(tags[n]["flagged_missing"] + tags[n]["flagged_extra"]))[:8]:
        entry = tags[name]
        lines.append(f"  {name}: given on {entry['texts']}; flagged {entry['flagged_extra']} given but likely absent, "
                     f"{entry['flagged_missing']} likely present but not given")  # fmt: skip
    duplicates, leaks = summary["duplicates"], summary["leaks"]
    lines.append(
        f"Duplicates in training: {duplicates['exact_pairs']} exact and {duplicates['near_pairs']} near pairs; "
        f"{duplicates['conflicting_groups']} groups with conflicting labels ({counts['duplicate']} rows flagged); "
        f"{duplicates['short_text_pairs']} pairs are texts of under 5 words"
    )
    if leaks is None:
        lines.append("Leaks: no evaluation split to compare with (give --eval-data)")
    else:
        short = leaks["short_text_pairs"]
        lines.append(f"Leaks into the evaluation split: {leaks['exact_pairs']} exact and {leaks['near_pairs']} near "
                     f"pairs ({counts['leak']} training rows; {short} pairs are texts of under 5 words)")  # fmt: skip
    shown = [r for r in rows if r["kind"] == "label"][:top]
    if shown:
        lines.append(f"Top {len(shown)} label issues (row: given -> suggested, score, text):")
        lines += [f"  {r['row']}: {r['given']} -> {r['suggested']}  {r['score']:.3f}  {_snippet(r['text'])}"
                  for r in shown]  # fmt: skip
    return "\n".join(lines)


def _quality(quality: dict[str, Any]) -> str:
    metric, value, guess = quality["metric"], quality["value"], quality["constant_guess"]
    return f"out-of-sample {metric} {value:.3f}; a constant guess: {guess:.3f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _snippet(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return json.dumps(flat if len(flat) <= width else flat[: width - 3] + "...", ensure_ascii=False)  # as typed


def write_clean(path: Path, config: TrainConfig, data: Any, findings: list[Finding], relabel: bool,
                space: LabelSpace) -> tuple[int, int, int]:  # fmt: skip
    """The audited training rows, as read from --data (every column), without the flagged ones; with `relabel`,
    label issues and conflicting duplicates with a suggestion keep their row under the suggested label. Returns
    (rows written, dropped, relabelled)."""
    from ..data.loading import load_splits

    frame = load_splits(config.data, data_config=config.data_config)[config.train_split].to_pandas()
    positions = {int(r): p for p, r in enumerate(data["row"])}
    drop: set[int] = set()
    relabelled: dict[int, Any] = {}
    for finding in findings:
        row = int(data["row"][finding.position])
        if relabel and finding.kind != "leak" and finding.suggested is not None and row not in drop:
            relabelled[row] = finding.suggested
        else:
            drop.add(row)
            relabelled.pop(row, None)
    kept = [r for r in sorted(positions) if r not in drop]
    frame = frame.iloc[kept].copy()
    for row, suggested in relabelled.items():
        _set_label(frame, row, suggested, config, space)
    _write_frame(frame, path)
    return len(frame), len(drop), len(relabelled)


def _set_label(frame: Any, row: int, suggested: Any, config: TrainConfig, space: LabelSpace) -> None:
    """One row's label in the file's own form: a class name or id, a list of tags, joined tags, 0/1 columns, a
    number."""
    if config.label_columns:
        for name, on in zip(config.label_columns, np.asarray(suggested) > 0.5):
            frame.at[row, name] = int(on)
        return
    column = config.label_column
    value = space.problem.label_in_file(suggested, frame.at[row, column], space, config.label_separator,
                                        frame[column])  # fmt: skip
    if isinstance(value, float) and not value.is_integer() and frame[column].dtype.kind in "iu":
        frame[column] = frame[column].astype("float64")  # a suggested rating of 6.4 among whole ones
    frame.at[row, column] = value


def _write_frame(frame: Any, path: Path) -> None:
    fmt = CLEAN_FORMATS[path.suffix.lower()]
    with staged_path(path) as partial:
        if fmt == "parquet":
            frame.to_parquet(partial, index=False)
        elif fmt == "jsonl":
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(partial, index=False, sep="\t" if fmt == "tsv" else ",")
