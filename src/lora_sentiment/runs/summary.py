"""Report stage, text: what a user reads first about a run — the recipe, the per-epoch curve, the final scores
beside the baseline, the examples — and the per-label table, all from its metrics record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..problems.abstention import threshold_text


def summary(config: Any, space: Any, metrics: Any) -> str:
    """What a user wants to see first: the recipe, the per-epoch curve, the final scores, the examples.
    `space` is the run's LabelSpace."""
    final, train, names = metrics.final, metrics.train, space.names
    columns = space.problem.headline_of(final)
    lines = [
        f"Model      {config.model}  "
        f"(LoRA r={config.lora_r}, alpha={config.lora_alpha:g} on {', '.join(config.lora_targets or [])})",
        f"Data       {config.data}  ({train.train_samples or '?'} train / {final.samples or '?'} eval, "
        f"max {config.max_length} tokens, {space.problem_type}, labels {', '.join(names[:12])})",
        f"Training   {epochs_text(train.epochs)} in {train.precision or '?'}, {_fmt(train.runtime_s, '.0f')} s, "
        f"{train.trainable_parameters:,} of {train.total_parameters:,} parameters trained",
        "",
        f"{'epoch':>6} {'train loss':>11} {'eval loss':>10} " + " ".join(f"{c:>9}" for c in columns),
    ]
    for row in metrics.history:
        cells = [_fmt(row.get(key)) for key in ("train_loss", "loss", *columns)]
        lines.append(f"{row.epoch:>6g} {cells[0]:>11} {cells[1]:>10} " + " ".join(f"{c:>9}" for c in cells[2:]))
    lines += ["", f"Kept epoch {_fmt(final.epoch, 'g')}: {_scores(final, space)}"]
    if final.get("out_of_sample"):
        lines.append(out_of_sample_text(final, space))
    if metrics.baseline:
        lines.append(f"Baseline (TF-IDF + linear): {_scores(metrics.baseline, space, like=final)}"
                     f"{out_of_sample_suffix(metrics.baseline, space)}")  # fmt: skip
    if getattr(metrics, "comparison", None):
        from ..problems.intervals import comparison_text

        lines.append(comparison_text(metrics.comparison, "The run", "the baseline"))
    if getattr(metrics, "cross_validation", None):
        lines.append(cross_validation_text(metrics.cross_validation, space))
    if getattr(metrics, "overlap", None) and metrics.overlap["in_training"]:
        from ..data.duplicates import overlap_text

        lines.append(overlap_text(metrics.overlap))
    if final.get("calibration"):
        lines.append(calibration_text(final["calibration"]))
    if final.get("risk_coverage"):
        lines.append(risk_coverage_text(final["risk_coverage"]))
    lines += _confusion_lines(final.confusion_matrix, names) if final.confusion_matrix else []
    if final.get("per_label") and not final.confusion_matrix:  # tags: their table stands for the matrix
        lines += per_label_lines(final, space, limit=12).splitlines()
    examples = metrics.examples
    if examples.after:
        from ..data.examples import shown

        lines.append("Examples (before -> after training):")
        for before, after in zip(examples.before, examples.after):
            given = f"(given {after['given']}) " if after.get("given") is not None else ""
            lines.append(f"  {before['label']:>8} -> {after['label']:<8} {given}{shown(after['text'])}")
    return "\n".join(lines)


def _scores(scores: Any, space: Any, like: Any = None) -> str:
    """Every metric the run has, the headline ones (those of `like`, scored on the same texts) first, with their 95 %
    interval when recorded."""
    from ..problems.intervals import with_interval

    intervals, first = scores.get("intervals") or {}, space.problem.headline_of(like or scores)
    order = [*first, *(key for key in space.problem.metrics if key not in first)]
    return ", ".join(f"{key} {with_interval(scores[key], intervals.get(key)) if scores[key] is not None else '-'}"
                     for key in order if key in scores)  # fmt: skip


def _confusion_lines(matrix: Sequence[Sequence[int]], label_names: Sequence[str]) -> list[str]:
    width = max(8, *(len(n) for n in label_names))
    lines = [
        "Confusion (rows true, columns predicted):",
        " " * (width + 2) + " ".join(f"{n:>{width}}" for n in label_names),
    ]
    return lines + [
        f"  {name:<{width}}" + " ".join(f"{v:>{width}}" for v in row) for name, row in zip(label_names, matrix)
    ]


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def headline(final: dict[str, Any], space: Any) -> str:
    """The scores a user reads first, for the log line at the end of training."""
    return space.problem.headline_text(final)


def out_of_sample_suffix(record: dict[str, Any], space: Any) -> str:
    """`; decided out of sample: Macro-F1 0.1538, micro-F1 0.2501` for a baseline whose thresholds were tuned on
    the texts it is scored on, as the run's were ("" otherwise)."""
    decided = record.get("out_of_sample")
    return f"; decided out of sample: {headline(decided, space)}" if decided else ""


def out_of_sample_text(final: dict[str, Any], space: Any) -> str:
    """The headline scores of decisions fitted on other evaluation rows, where the run's own were fitted on these
    rows ("" otherwise)."""
    record = final.get("out_of_sample")
    if not record:
        return ""
    part = {2: "half", 3: "third", 4: "quarter", 5: "fifth"}.get(record["folds"], f"1/{record['folds']} part")
    return (f"Thresholds tuned on these {final.get('samples') or ''} texts flatter their scores: with each {part} of "
            f"them decided by thresholds tuned on the rest, {headline(record, space)}; unseen texts should score "
            "between the two.")  # fmt: skip


def cross_validation_text(record: dict[str, Any], space: Any) -> str:
    """The log's lines: the cross-validated scores, the baseline's on the same folds, and whether they differ."""
    from ..problems.intervals import comparison_text

    lines = [f"Cross-validated ({record['folds']} folds, each of the {record['samples']} training texts scored by a "
             f"run that did not see it): {headline(record, space)}"]  # fmt: skip
    if record.get("baseline"):
        weighted = " (weighted as the run)" if record["baseline"].get("weighted") else ""
        lines.append(f"Baseline cross-validated on the same folds{weighted}: {headline(record['baseline'], space)}")
    if record.get("comparison"):
        lines.append(comparison_text(record["comparison"], "The recipe", "the baseline"))
    return "\n".join(lines)


def per_label_lines(final: dict[str, Any], space: Any, limit: int = 40) -> str:
    """The per-label table as text (precision, recall, F1, support; and thresholds for tags)."""
    table = final.get("per_label") or {}
    if not table:
        return ""
    width = max(8, *(len(name) for name in table))
    tags = "threshold" in next(iter(table.values()))
    lines = [f"{'label':<{width}} precision  recall      f1  support" + ("  threshold" if tags else "")]
    for name, row in list(table.items())[:limit]:
        line = f"{name:<{width}} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>7.3f} {row['support']:>8}"
        lines.append(line + (f" {row['threshold']:>10.3f}" if tags else ""))
    return "\n".join(lines)


def calibration_text(report: dict[str, Any]) -> str:
    """One line on what calibration fitted and how much it helped, out of sample (problems/calibration.py)."""
    n = report["fitted_on"]
    if report["method"] == "conformal":
        nominal, bands = report["coverage_nominal"], report.get("band_half_widths")
        width = f"±{report['interval_half_width']:.4g} around each value"
        if bands:
            width = (f"±{min(bands):.3g} to ±{max(bands):.3g} around each value, by {len(bands)} bands of the "
                     "predicted value")  # fmt: skip
        return (
            f"Calibration: a {nominal:.0%} interval of {width}, fitted on {n} evaluation texts; it held "
            f"{report['coverage']:.1%} of true values (cross-fitted)."
        )
    before, after = report["before"], report["after"]
    if report["method"] == "temperature":
        fitted = f"temperature {report['temperature']:.3g}"
    else:
        t = report["temperatures"]
        fitted = f"a temperature per tag ({t['min']:.3g}-{t['max']:.3g}, median {t['median']:.3g})"
    changes = ", ".join(f"{name} {before[key]:.4f} -> {after[key]:.4f}" for key, name in
                        (("ece", "ECE"), ("brier", "Brier"), ("nll", "NLL")))  # fmt: skip
    floor = f" (a perfectly calibrated model would show ECE {after['ece_floor']:.4f} on these texts)" if \
        "ece_floor" in after else ""  # fmt: skip
    if not report.get("applied", True):
        return (f"Calibration: not applied; {fitted} fitted on half of the {n} evaluation texts did not help the "
                f"other half ({changes}{floor}), so the raw outputs are kept.")  # fmt: skip
    return f"Calibration: {fitted}, fitted on {n} evaluation texts; cross-fitted {changes}{floor}."


def risk_coverage_text(curve: dict[str, Any]) -> str:
    """One line: the selective metric at each share of texts answered, and the --min-confidence that gives it."""
    metric = curve["metric"]
    cells = "; ".join(f"{row['coverage']:.0%} answered: {row[metric]:.4f}" +
                      (f" ({threshold_text(curve, row)})" if row["coverage"] < 1 else "")
                      for row in curve["table"])  # fmt: skip
    return f"Abstention ({metric} of the answers given): {cells}."


def epochs_text(epochs: float) -> str:
    """A count of epochs as the logs say it: 1 epoch, 3 epochs, 0.5 epochs."""
    return f"{epochs:g} epoch" + ("" if epochs == 1 else "s")
