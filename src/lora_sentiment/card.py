"""The model card (README.md) of a run: the recipe and its results, with hub-style metadata."""

from __future__ import annotations

from typing import Any

import yaml

from .config import TrainConfig


def model_card(config: TrainConfig, label_names: list[str], metrics: dict[str, Any], parameters: Any) -> str:
    final = metrics["final"]
    metadata = {
        "library_name": "peft",
        "base_model": config.model,
        "pipeline_tag": "text-classification",
        "tags": ["lora", "peft", "text-classification", "lora-sentiment"],
        "metrics": ["accuracy", "f1"],
    }
    history = "\n".join(
        f"| {row['epoch']:g} | {_fmt(row.get('train_loss'))} | {_fmt(row.get('loss'))} | {_fmt(row.get('accuracy'))} | {_fmt(row.get('f1'))} |"
        for row in metrics["history"]
    )
    confusion = final.get("confusion_matrix", [])
    confusion_rows = "\n".join(f"| **{label_names[i]}** | " + " | ".join(str(v) for v in row) + " |" for i, row in enumerate(confusion))
    examples = "\n".join(
        f"| {b['text']} | {b['label']} ({max(b['probabilities'].values()):.2f}) | {a['label']} ({max(a['probabilities'].values()):.2f}) |"
        for b, a in zip(metrics["examples"]["before"], metrics["examples"]["after"])
    )
    resize = (
        "base.resize_token_embeddings(len(tokenizer))  # training added a pad token\n"
        if metrics["train"].get("added_pad_token")
        else ""
    )
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False).strip()}
---

# LoRA text classifier on {config.model}

Fine-tuned with [lora-sentiment](https://pypi.org/project/lora-sentiment/) on `{config.data}`:
LoRA (r={config.lora_r}, alpha={config.lora_alpha:g}, dropout={config.lora_dropout:g}) on `{', '.join(config.lora_targets or [])}`,
the classification head trained in full; {parameters.trainable:,} of {parameters.total:,} parameters trainable
({parameters.percent:.2f} %). Labels: {', '.join(f'{i} = {n}' for i, n in enumerate(label_names))}.

## Results

On {final['samples']} evaluation texts (best epoch {final['epoch']:g} by eval {config.metric_for_best_model}):
accuracy **{final['accuracy']:.4f}**, F1 {final['f1']:.4f}, precision {final['precision']:.4f}, recall {final['recall']:.4f}{_auc(final)}.

| epoch | train loss | eval loss | accuracy | F1 |
|---|---|---|---|---|
{history}

Confusion matrix (rows: true label, columns: predicted):

| | {' | '.join(label_names)} |
|---|{'---|' * len(label_names)}
{confusion_rows}

![Learning curves](learning_curves.png)
![Confusion matrix](confusion_matrix.png)

## Before and after training

| text | untrained | trained |
|---|---|---|
{examples}

## Use

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

## Training settings

```yaml
{config.to_yaml().strip()}
```
"""


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def _auc(final: dict[str, Any]) -> str:
    return f", ROC-AUC {final['roc_auc']:.4f}" if "roc_auc" in final and final["roc_auc"] == final["roc_auc"] else ""
