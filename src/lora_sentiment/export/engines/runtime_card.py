"""The card (README.md) of an export that a runtime opens without torch: ONNX Runtime, OpenVINO."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...runs.run import RUN_CONFIG_FILE

if TYPE_CHECKING:
    from ...runs.run import Run


def runtime_card(run: Run, fmt: str, quantize: str, described: tuple[str, str, str, str]) -> str:
    """`described`: the card's library, its title, what int8 means here, and the lines that load the model and
    compute `logits`."""
    from ...runs.card import base_model_line

    library, title, int8_note, load = described
    int8 = quantize == "int8"
    return f"""---
library_name: {library}
{base_model_line(run.config.model)}pipeline_tag: text-classification
tags: [lora-sentiment, merged-lora, {fmt}{", int8" if int8 else ""}]
---

# {run.config.model} with a merged LoRA adapter, as {title}{f" ({int8_note})" if int8 else ""}

Exported by `lora-sentiment export --format {fmt}` from the run `{run.path.name}` ({run.space.problem_type};
labels in `labels.json`, truncation settings in `{RUN_CONFIG_FILE}`).

```bash
lora-sentiment predict THIS_FOLDER "A wonderful, moving film."   # the run's truncation, no torch needed
```

```python
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")
texts = ["A wonderful, moving film."]
inputs = tokenizer(texts, truncation=True, max_length={run.config.max_length}, return_tensors="np")
{load}
```
"""
