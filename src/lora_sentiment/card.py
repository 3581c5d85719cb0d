"""The model card (README.md) of a run: the recipe and its results, with hub-style metadata."""

from __future__ import annotations

from typing import Any

import yaml

from .config import TrainConfig


def model_card(
    config: TrainConfig, label_names: list[str], metrics: Any, parameters: Any, *, figures: dict[str, str]
) -> str:
    """`metrics` is the run's RunMetrics; `figures` maps each plot's title to its file in the run."""
    sections = [
        _front_matter(config),
        _recipe(config, label_names, parameters),
        _results(config, label_names, metrics, figures),
        _before_and_after(metrics),
        _use(config, label_names, metrics.train.added_pad_token),
        f"## Training settings\n\n```yaml\n{config.to_yaml().strip()}\n```\n",
    ]
    return "\n".join(sections)


def _front_matter(config: TrainConfig) -> str:
    metadata = {
        "library_name": "peft",
        "base_model": config.model,
        "pipeline_tag": "text-classification",
        "tags": ["lora", "peft", "text-classification", "lora-sentiment"],
        "metrics": ["accuracy", "f1"],
    }
    return f"---\n{yaml.safe_dump(metadata, sort_keys=False).strip()}\n---\n"


def _recipe(config: TrainConfig, label_names: list[str], parameters: Any) -> str:
    lora = f"LoRA (r={config.lora_r}, alpha={config.lora_alpha:g}, dropout={config.lora_dropout:g})"
    labels = ", ".join(f"{i} = {n}" for i, n in enumerate(label_names))
    return f"""# LoRA text classifier on {config.model}

Fine-tuned with [lora-sentiment](https://pypi.org/project/lora-sentiment/) on `{config.data}`:
{lora} on `{", ".join(config.lora_targets or [])}`,
the classification head trained in full; {parameters.trainable:,} of {parameters.total:,} parameters trainable
({parameters.percent:.2f} %). Labels: {labels}.
"""


def _results(config: TrainConfig, label_names: list[str], metrics: Any, figures: dict[str, str]) -> str:
    final = metrics.final
    scores = (
        f"accuracy **{final['accuracy']:.4f}**, F1 {final['f1']:.4f}, precision {final['precision']:.4f}, "
        f"recall {final['recall']:.4f}{_auc(final)}"
    )
    images = "\n".join(f"![{title}]({file})" for title, file in figures.items())
    return f"""## Results

On {final.samples} evaluation texts (best epoch {final.epoch:g} by eval {config.metric_for_best_model}):
{scores}.

| epoch | train loss | eval loss | accuracy | F1 |
|---|---|---|---|---|
{_history_rows(metrics)}

Confusion matrix (rows: true label, columns: predicted):

| | {" | ".join(label_names)} |
|---|{"---|" * len(label_names)}
{_confusion_rows(final, label_names)}

{images}
"""


def _before_and_after(metrics: Any) -> str:
    return f"""## Before and after training

| text | untrained | trained |
|---|---|---|
{_example_rows(metrics)}
"""


def _use(config: TrainConfig, label_names: list[str], added_pad_token: bool) -> str:
    resize = "base.resize_token_embeddings(len(tokenizer))  # training added a pad token\n" if added_pad_token else ""
    return f"""## Use

```bash
lora-sentiment predict THIS_DIR "What a wonderful film."
```

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from peft import PeftModel

tokenizer = AutoTokenizer.from_pretrained("THIS_DIR")
base = AutoModelForSequenceClassification.from_pretrained("{config.model}", num_labels={len(label_names)})
{resize}model = PeftModel.from_pretrained(base, "THIS_DIR")
```
"""


def _history_rows(metrics: Any) -> str:
    cells = ("train_loss", "loss", "accuracy", "f1")
    return "\n".join(
        f"| {row.epoch:g} | " + " | ".join(_fmt(row.get(key)) for key in cells) + " |" for row in metrics.history
    )


def _confusion_rows(final: Any, label_names: list[str]) -> str:
    matrix = final.confusion_matrix or []
    return "\n".join(f"| **{label_names[i]}** | " + " | ".join(map(str, row)) + " |" for i, row in enumerate(matrix))


def _example_rows(metrics: Any) -> str:
    def cell(row: Any) -> str:
        return f"{row.label} ({max(row.probabilities.values()):.2f})"

    pairs = zip(metrics.examples.before, metrics.examples.after)
    return "\n".join(f"| {before.text} | {cell(before)} | {cell(after)} |" for before, after in pairs)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def _auc(final: dict[str, Any]) -> str:
    return f", ROC-AUC {final['roc_auc']:.4f}" if "roc_auc" in final and final["roc_auc"] == final["roc_auc"] else ""
