"""A plain transformers model: the LoRA weights folded into the base (safetensors), for
`transformers.pipeline("text-classification", model=OUT_DIR)` without peft; also a starting point to fine-tune."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...runs.run import RUN_CONFIG_FILE
from .base import Engine

if TYPE_CHECKING:
    from ...options import ExportOptions
    from ...runs.run import Run


class Transformers(Engine):
    name = "transformers"
    title = "transformers (safetensors)"

    def write(
        self, model: Any, tokenizer: Any, run: Run, staging: Path, options: ExportOptions, prepared: Any
    ) -> list[str]:
        space = run.space
        model.config.id2label = dict(enumerate(space.names[: space.num_outputs]))
        model.config.label2id = {name: i for i, name in model.config.id2label.items()}
        # The pipeline truncates to this when called with truncation=True; reviews longer than it are cut at the
        # end (the run's head+tail truncation is this package's, not the pipeline's).
        tokenizer.model_max_length = run.config.max_length
        model.save_pretrained(str(staging))  # safetensors
        return []

    def card(self, run: Run, options: ExportOptions) -> str:
        from ...runs.card import base_model_line

        space, base_model = run.space, run.config.model
        labels = ", ".join(f"{i} = {n}" for i, n in enumerate(space.names))
        thresholds = f"\n{space.problem.export_note}\n" if space.problem.export_note else ""
        return f"""---
library_name: transformers
{base_model_line(base_model)}pipeline_tag: text-classification
tags: [lora-sentiment, merged-lora]
---

# {base_model} with a merged LoRA adapter

Exported by `lora-sentiment export` from the run `{run.path.name}`: the LoRA weights are folded into the base
weights, so this is a plain transformers model ({space.problem_type}). Labels: {labels}.
{thresholds}
```python
from transformers import pipeline

classify = pipeline("text-classification", model="PATH_TO_THIS_FOLDER")
{space.problem.pipeline_call}
```

Long texts: `truncation=True` keeps the first tokens; training used this package's truncation
(see `{RUN_CONFIG_FILE}`), which `lora-sentiment predict` applies.
"""

    def done(self, run: Run, out_dir: Path, options: ExportOptions) -> str:
        return f"Merged {run.path} into {run.config.model}: standalone model saved to {out_dir}"


ENGINE = Transformers()
