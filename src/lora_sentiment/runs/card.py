"""The model card (README.md) of a run: the recipe and its results, with hub-style metadata."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import TrainConfig
from ..problems.space import LabelSpace, describe_weights


def model_card(
    config: TrainConfig, space: LabelSpace, metrics: Any, parameters: Any, *, figures: dict[str, str]
) -> str:
    """`metrics` is the run's RunMetrics; `figures` maps each plot's title to its file in the run."""
    sections = [
        _front_matter(config, space, space.problem.headline_of(metrics.final)),
        _recipe(config, space, parameters, metrics.train.class_weights),
        _results(config, space, metrics, figures),
        _before_and_after(metrics),
        _use(config, space, metrics.train.added_pad_token),
        f"## Training settings\n\n```yaml\n{config.to_yaml().strip()}\n```\n",
    ]
    return "\n".join(sections)


def _card_metrics(space: LabelSpace, scores: Any) -> list[str]:
    """The scores the card's results line shows: the headline ones of `scores` first, then the rest of the problem
    type's own, less precision / recall / ROC-AUC (ROC-AUC has its own clause)."""
    headline = list(space.problem.headline_of(scores))
    return headline + [m for m in space.problem.metrics if m not in ("precision", "recall", "roc_auc", *headline)]


def _front_matter(config: TrainConfig, space: LabelSpace, headline: Sequence[str]) -> str:
    metadata = {
        "library_name": "peft",
        **({"base_model": hub_id} if (hub_id := hub_model_id(config.model)) else {}),
        "pipeline_tag": "text-classification",
        "tags": ["lora", "peft", "text-classification", "lora-sentiment", space.problem_type],
        "metrics": list(headline),
    }
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False).strip()}\n---\n"


def base_model_line(model: str) -> str:
    """The `base_model:` line of an export card's front matter, or nothing (hub_model_id)."""
    hub_id = hub_model_id(model)
    return f"base_model: {hub_id}\n" if hub_id else ""


def hub_model_id(model: str) -> str | None:
    """The Hub's name for the base model, as the card's metadata wants it (the Hub checks `base_model` against its
    models on upload): a hub name as given, or one read off a Hub download's cache folder
    (models--org--name/snapshots/...). Another local folder has none: its path means nothing elsewhere, so the
    card's text names it and the metadata does not."""
    if not model.startswith(("/", "~", ".")):
        return model
    for part in Path(model).parts:
        if part.startswith("models--") and len(part) > len("models--"):
            return part[len("models--") :].replace("--", "/", 1)
    return None


def _recipe(config: TrainConfig, space: LabelSpace, parameters: Any, weights: dict[str, float] | None) -> str:
    lora = f"LoRA (r={config.lora_r}, alpha={config.lora_alpha:g}, dropout={config.lora_dropout:g})"
    labels = space.problem.describe_labels(space.names)
    weighted = "" if not weights else (f" Loss weighted by label (`--class-weights {config.class_weights}`): "
                                       f"{describe_weights(weights)}.")  # fmt: skip
    return f"""# LoRA text classifier on {config.model}

Fine-tuned with [lora-sentiment](https://pypi.org/project/lora-sentiment/) on `{config.data}`:
{lora} on `{", ".join(config.lora_targets or [])}`,
{_trained_in_full(config)}; {parameters.trainable:,} of {parameters.total:,} parameters trainable
({parameters.percent:.2f} %). Labels: {labels}.{weighted}
"""


def _trained_in_full(config: TrainConfig) -> str:
    if config.pooling != "mean":
        return "the classification head trained in full"
    return ("the classification head and the last layer's attention query trained in full (`--pooling mean`: the "
            "query starts at zero, so the head starts from an average over the text)")  # fmt: skip


def _results(config: TrainConfig, space: LabelSpace, metrics: Any, figures: dict[str, str]) -> str:
    final = metrics.final
    intervals = final.get("intervals") or {}
    scores = ", ".join(f"{key} **{final[key]:.4f}**{_interval(intervals.get(key))}" if i == 0 else
                       f"{key} {final[key]:.4f}{_interval(intervals.get(key))}" for i, key in
                       enumerate(_card_metrics(space, final)) if key in final)  # fmt: skip
    if "roc_auc" in final and final["roc_auc"] == final["roc_auc"]:
        scores += f", ROC-AUC {final['roc_auc']:.4f}"
    images = "\n".join(f"![{title}]({file})" for title, file in figures.items())
    return f"""## Results

On {final.samples} evaluation texts ({_kept_epoch(config, metrics)}):
{scores}{" (95 % intervals, bootstrap over the texts)" if intervals else ""}.{_out_of_sample_line(final, space)}
{_baseline_line(metrics.baseline, space, final)}{_comparison_line(metrics)}{_cross_validation_line(metrics, space)}
{_overlap_line(metrics)}{_calibration_line(final)}{_abstention_table(final)}

{_history_table(metrics, space)}
{_per_label_table(final, space)}
{_confusion_table(final, space.names)}
{images}
"""


def _kept_epoch(config: TrainConfig, metrics: Any) -> str:
    epoch = f"{metrics.final.epoch:g}"
    if metrics.train.kept == "last":
        return (f"the last epoch, {epoch}, kept: the schedule was fixed, as {metrics.final.samples} evaluation texts "
                "are too few to choose between epochs")  # fmt: skip
    return f"best epoch {epoch} by eval {config.metric_for_best_model}"


def _baseline_line(baseline: dict[str, Any] | None, space: LabelSpace, final: Any) -> str:
    if not baseline:
        return ""
    keys = [key for key in _card_metrics(space, final) if key in baseline]  # in the run's order: the same texts
    intervals = baseline.get("intervals") or {}
    scores = ", ".join(f"{key} {baseline[key]:.4f}{_interval(intervals.get(key))}" for key in keys)
    fitted = f"fitted in {baseline['seconds']:.1f} s"
    from .summary import out_of_sample_suffix

    decided = out_of_sample_suffix(baseline, space)
    return f"\nThe plain baseline on the same split, {baseline['model']} ({fitted}): {scores}{decided}.\n"


def _interval(bounds: list[float] | None) -> str:
    return f" ({bounds[0]:.4f}-{bounds[1]:.4f})" if bounds else ""


def _comparison_line(metrics: Any) -> str:
    from ..problems.intervals import comparison_text

    comparison = getattr(metrics, "comparison", None)
    return f"\n{comparison_text(comparison, 'This run', 'the baseline')}\n" if comparison else ""


def _cross_validation_line(metrics: Any, space: LabelSpace) -> str:
    from .summary import cross_validation_text

    record = getattr(metrics, "cross_validation", None)
    return f"\n{cross_validation_text(record, space)}\n" if record else ""


def _out_of_sample_line(final: Any, space: LabelSpace) -> str:
    from .summary import out_of_sample_text

    text = out_of_sample_text(final, space)
    return f"\n{text}" if text else ""


def _overlap_line(metrics: Any) -> str:
    overlap = getattr(metrics, "overlap", None)
    if not overlap or not overlap["in_training"]:
        return ""
    from ..data.duplicates import overlap_text

    return f"\n{overlap_text(overlap).removeprefix('Warning: ')}\n"


def _calibration_line(final: Any) -> str:
    from .summary import calibration_text

    report = final.get("calibration")
    if not report:
        return ""
    how = ("Calibration quality is cross-fitted: fitted on one half of the evaluation split and scored on the "
           "other, and back, since the kept epoch was chosen on the same split.")  # fmt: skip
    if report.get("applied", True):
        how += " The saved calibration is fitted on all of it and applied by every engine (`labels.json`)."
    return f"\n{calibration_text(report)} {how}\n"


def _abstention_table(final: Any) -> str:
    curve = final.get("risk_coverage")
    if not curve:
        return ""
    metric, flag = curve["metric"], curve.get("flag", "min_confidence")
    rows = "\n".join(f"| {row['coverage']:.0%} | {row[metric]:.4f} | {row[flag]:.4g} |" for row in curve["table"])
    option, short = ("--min-confidence P", "P") if flag == "min_confidence" else ("--max-interval W", "W")
    return (
        f"\nAnswering only the texts it is surest of (`predict {option}`; the rest are marked "
        f"`abstained`), on the evaluation split:\n\n| answered | {metric} | {short} |\n|---:|---:|---:|\n{rows}\n"
    )


def _history_table(metrics: Any, space: LabelSpace) -> str:
    cells = ["train_loss", "loss", *space.problem.headline_of(metrics.final)]
    rows = "\n".join(
        f"| {row.epoch:g} | " + " | ".join(_fmt(row.get(key)) for key in cells) + " |" for row in metrics.history
    )
    header = "| epoch | train loss | eval loss | " + " | ".join(cells[2:]) + " |"
    return f"{header}\n|---|---|---|{'---|' * (len(cells) - 2)}\n{rows}\n"


def _per_label_table(final: Any, space: LabelSpace) -> str:
    table = final.get("per_label")
    if not table:
        return ""
    tags = "threshold" in next(iter(table.values()))
    header = "| label | precision | recall | F1 | support |" + (" threshold |" if tags else "")
    rows = [
        f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        + (f" {row['threshold']:.3f} |" if tags else "")
        for name, row in table.items()
    ]
    return f"Per label:\n\n{header}\n|---|---|---|---|---|{'---|' if tags else ''}\n" + "\n".join(rows) + "\n"


def _confusion_table(final: Any, label_names: list[str]) -> str:
    if not final.confusion_matrix:
        return ""
    return f"""Confusion matrix (rows: true label, columns: predicted):

| | {" | ".join(label_names)} |
|---|{"---|" * len(label_names)}
{_confusion_rows(final, label_names)}
"""


def _before_and_after(metrics: Any) -> str:
    given = any(row.given is not None for row in metrics.examples.after)
    return f"""## Before and after training

| text |{" given |" if given else ""} untrained | trained |
|---|{"---|" if given else ""}---|---|
{_example_rows(metrics, given)}
"""


def _use(config: TrainConfig, space: LabelSpace, added_pad_token: bool) -> str:
    resize = "base.resize_token_embeddings(len(tokenizer))  # training added a pad token\n" if added_pad_token else ""
    return f"""## Use

```bash
lora-sentiment predict THIS_DIR "What a wonderful film."
```

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from peft import PeftModel

tokenizer = AutoTokenizer.from_pretrained("THIS_DIR")
base = AutoModelForSequenceClassification.from_pretrained(
    "{config.model}", num_labels={space.num_outputs}, problem_type="{space.hf_problem_type}"
)
{resize}model = PeftModel.from_pretrained(base, "THIS_DIR")
```
"""


def _confusion_rows(final: Any, label_names: list[str]) -> str:
    matrix = final.confusion_matrix or []
    return "\n".join(f"| **{label_names[i]}** | " + " | ".join(map(str, row)) + " |" for i, row in enumerate(matrix))


def _example_rows(metrics: Any, given: bool) -> str:
    def cell(row: Any) -> str:
        return f"{row.label} ({max(row.probabilities.values()):.2f})" if row.probabilities else row.label

    rows = []
    for before, after in zip(metrics.examples.before, metrics.examples.after):
        cells = [
            _table_cell(before.text),
            *([_table_cell(after.given or "")] if given else []),
            cell(before),
            cell(after),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _table_cell(text: str) -> str:
    """A text as one cell of a Markdown table (shortened): a | or a line break in it would end the cell or the row."""
    from ..data.examples import shown

    return shown(text).replace("|", "\\|")


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"
