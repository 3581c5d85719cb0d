"""Export stage: fold the LoRA weights into the base model and save a standalone transformers model.

The result needs neither peft nor this package: `transformers.pipeline("text-classification", model=OUT_DIR)`."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .atomic import fresh_staging_dir, replace_dir
from .errors import UserError
from .model import load_run_model
from .problem import LabelSpace
from .run import RUN_CONFIG_FILE, Run

EXPORT_CARD_FILE = "README.md"


def export_merged(
    run_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False, log: Callable[[str], None] = print
) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir).expanduser()
    if out_dir.resolve() == run_dir.resolve():
        raise UserError("OUT_DIR must differ from RUN_DIR: the export is a separate, standalone model")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise UserError(f"{out_dir} exists and is not empty; pass --overwrite to replace it or choose another OUT_DIR")
    run = Run.open(run_dir)
    config, space = run.config, run.space
    # With the base model's own dropout (not the training override): the export is also a starting point to fine-tune.
    merged, tokenizer = load_run_model(run)
    merged.config.id2label = dict(enumerate(space.names[: space.num_outputs]))
    merged.config.label2id = {name: i for i, name in merged.config.id2label.items()}
    # The pipeline truncates to this when called with truncation=True; reviews longer than it are cut at the end
    # (the run's head+tail truncation is this package's, not the pipeline's).
    tokenizer.model_max_length = config.max_length

    staging = fresh_staging_dir(out_dir)
    try:
        merged.save_pretrained(str(staging))  # safetensors
        tokenizer.save_pretrained(str(staging))
        run.copy_records(staging)
        (staging / EXPORT_CARD_FILE).write_text(_export_card(config.model, space, run_dir), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists() and not out_dir.is_dir():
        out_dir.unlink()
    replace_dir(staging, out_dir)
    log(f"Merged {run_dir} into {config.model}: standalone model saved to {out_dir}")
    return out_dir


def _export_card(base_model: str, space: LabelSpace, run_dir: Path) -> str:
    labels = ", ".join(f"{i} = {n}" for i, n in enumerate(space.names))
    usage = {
        "single-label": 'classify(["A wonderful, moving film."], truncation=True)',
        "multi-label": 'classify(["A wonderful, moving film."], truncation=True, top_k=None)  # a sigmoid per tag',
        "regression": 'classify(["A wonderful, moving film."], truncation=True, function_to_apply="none")',
    }[space.problem_type]
    thresholds = (
        "\nEach tag's decision threshold (tuned on the evaluation split) is in `labels.json`; a tag is predicted "
        "when its probability reaches it.\n"
        if space.problem_type == "multi-label"
        else ""
    )
    return f"""---
library_name: transformers
base_model: {base_model}
pipeline_tag: text-classification
tags: [lora-sentiment, merged-lora]
---

# {base_model} with a merged LoRA adapter

Exported by `lora-sentiment export` from the run `{run_dir.name}`: the LoRA weights are folded into the base
weights, so this is a plain transformers model ({space.problem_type}). Labels: {labels}.
{thresholds}
```python
from transformers import pipeline

classify = pipeline("text-classification", model="PATH_TO_THIS_FOLDER")
{usage}
```

Long texts: `truncation=True` keeps the first tokens; training used this package's truncation
(see `{RUN_CONFIG_FILE}`), which `lora-sentiment predict` applies.
"""
