"""Export stage: fold the LoRA weights into the base model and save it as a standalone transformers model
(`transformers.pipeline("text-classification", model=OUT_DIR)`, no peft needed), as ONNX
(`onnxruntime.InferenceSession(OUT_DIR / "model.onnx")`) or as OpenVINO IR, the last two optionally in int8 and
read without torch by exported.py."""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .atomic import fresh_staging_dir, replace_dir
from .config import TrainConfig
from .data import TextEncoder, load_splits
from .errors import UserError
from .exported import EXPORT_INFO_FILE, ONNX_MODEL_FILE, OPENVINO_MODEL_FILE, padded_batches
from .model import load_run_model
from .problem import LabelSpace
from .run import RUN_CONFIG_FILE, Run

EXPORT_CARD_FILE = "README.md"
ONNX_OPSET = 17
CALIBRATION_BATCH = 16


def _check_out_dir(run_dir: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.resolve() == run_dir.resolve():
        raise UserError("OUT_DIR must differ from RUN_DIR: the export is a separate, standalone model")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise UserError(f"{out_dir} exists and is not empty; pass --overwrite to replace it or choose another OUT_DIR")


def export_merged(
    run_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False, log: Callable[[str], None] = print
) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir).expanduser()
    _check_out_dir(run_dir, out_dir, overwrite)
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


class _Logits(torch.nn.Module):
    """The classifier with plain tensor inputs and one output, the shape an ONNX graph takes."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits


def export_onnx(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    quantize: str = "none",
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """The merged model as ONNX (dynamic batch and sequence axes), with the tokenizer, the labels and the
    run's truncation settings beside it; `quantize="int8"` stores int8 weights (ONNX Runtime dynamic
    quantization, per-channel weight scales: activations quantized per batch at run time, no calibration)."""

    def write(model: torch.nn.Module, tokenizer: Any, run: Run, staging: Path) -> list[str]:
        return _write_onnx(model, tokenizer, staging / ONNX_MODEL_FILE, quantize)

    return _export_for_runtime(run_dir, out_dir, "onnx", quantize, write, overwrite, log)


def export_openvino(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    quantize: str = "none",
    calibration_data: str | None = None,
    calibration_samples: int = 256,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """The merged model as OpenVINO IR (converted from the ONNX graph). `quantize="int8"` is NNCF static
    quantization: activation ranges measured on `calibration_samples` texts of the run's training split (or of
    `calibration_data`), so the evaluation split stays a fair test of the quantized model."""

    # Read before the model loads: a bad --calibration-data fails at once.
    texts = (
        calibration_texts(Run.open(run_dir).config, calibration_data, calibration_samples) if quantize == "int8" else []
    )

    def write(model: torch.nn.Module, tokenizer: Any, run: Run, staging: Path) -> list[str]:
        return _write_openvino(model, tokenizer, run, staging, texts)

    return _export_for_runtime(run_dir, out_dir, "openvino", quantize, write, overwrite, log)


def _export_for_runtime(
    run_dir: str | Path,
    out_dir: str | Path,
    fmt: str,
    quantize: str,
    write: Callable[[torch.nn.Module, Any, Run, Path], list[str]],
    overwrite: bool,
    log: Callable[[str], None],
) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir).expanduser()
    _check_out_dir(run_dir, out_dir, overwrite)
    if quantize not in ("none", "int8"):
        raise UserError(f"--quantize {quantize!r}: choose none or int8")
    run = Run.open(run_dir)
    merged, tokenizer = load_run_model(run)
    merged.eval()
    staging = fresh_staging_dir(out_dir)
    try:
        names = write(merged, tokenizer, run, staging)
        tokenizer.save_pretrained(str(staging))
        run.copy_records(staging)
        info = {"format": fmt, "quantization": quantize, "opset": ONNX_OPSET, "inputs": names, "run": run_dir.name}
        (staging / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        (staging / EXPORT_CARD_FILE).write_text(_runtime_card(run, fmt, quantize), encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, out_dir)
    log(f"Exported {run_dir} as {fmt} ({'int8' if quantize == 'int8' else 'fp32'} weights) to {out_dir}")
    return out_dir


def calibration_texts(config: TrainConfig, data: str | None, samples: int, seed: int = 0) -> list[str]:
    """Up to `samples` non-empty texts, drawn at random from `data` (else the run's training split)."""
    from .evaluation import pick_split

    source = data or config.data
    try:
        ds = pick_split(load_splits(source, data_config=None if data else config.data_config),
                        None if data else config.train_split, source)  # fmt: skip
    except UserError as exc:
        fix = (
            "check --calibration-data"
            if data
            else "int8 calibration reads the run's training data; pass --calibration-data FILE"
        )
        raise UserError(f"{str(exc).split(' (')[0]} ({fix})") from exc
    if config.text_column not in ds.column_names:
        raise UserError(
            f"{source} has no column {config.text_column!r} for int8 calibration; columns: "
            f"{', '.join(ds.column_names)} (pass --calibration-data FILE with that column)"
        )
    ds = ds.shuffle(seed=seed).select(range(min(samples, len(ds))))
    texts = [t for t in ds[config.text_column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise UserError(f"{source} has no texts for int8 calibration (pass --calibration-data FILE)")
    return texts


def _write_onnx(model: torch.nn.Module, tokenizer: Any, path: Path, quantize: str) -> list[str]:
    accepted = set(inspect.signature(model.forward).parameters)
    sample = tokenizer(
        ["A sample review to trace.", "Another, longer sample review to trace the graph."],
        padding=True,
        return_tensors="pt",
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample and n in accepted]
    wrapper = _Logits(model)
    wrapper.names = names
    plain = path.with_name("model.fp32.onnx") if quantize == "int8" else path
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(
            wrapper, tuple(sample[n] for n in names), str(plain), input_names=names, output_names=["logits"],
            dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False,
        )  # fmt: skip
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # One scale per output channel: on the MiniLM test run it kept 99.0 % of the fp32 labels where one
        # scale per tensor kept 96.3 % (BENCHMARKS.md).
        quantize_dynamic(str(plain), str(path), weight_type=QuantType.QInt8, per_channel=True)
        plain.unlink()
    return names


def _write_openvino(model: torch.nn.Module, tokenizer: Any, run: Run, staging: Path, texts: list[str]) -> list[str]:
    import openvino

    graph = staging / "model.fp32.onnx"
    names = _write_onnx(model, tokenizer, graph, "none")
    converted = openvino.convert_model(str(graph))
    if texts:
        import nncf

        encoder = TextEncoder.for_config(tokenizer, run.config)
        feeds = [f for _, f in padded_batches(tokenizer, encoder(texts), names, CALIBRATION_BATCH)]
        # TRANSFORMER keeps the softmax / layer-norm inputs in floating point, where int8 loses accuracy.
        converted = nncf.quantize(
            converted, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(feeds)
        )
    openvino.save_model(converted, str(staging / OPENVINO_MODEL_FILE), compress_to_fp16=False)
    graph.unlink()
    return names


# Per runtime: the card's library, its title, and the lines that load the model and compute `logits`.
_RUNTIME_CARDS = {
    "onnx": ("onnx", "ONNX", "int8 weights", f"""import onnxruntime
session = onnxruntime.InferenceSession("THIS_FOLDER/{ONNX_MODEL_FILE}")
feeds = {{n.name: inputs[n.name] for n in session.get_inputs()}}
logits = session.run(["logits"], feeds)[0]"""),
    "openvino": ("openvino", "OpenVINO IR", "int8, NNCF", f"""import openvino
model = openvino.Core().compile_model("THIS_FOLDER/{OPENVINO_MODEL_FILE}", "CPU")
logits = model({{p.get_any_name(): inputs[p.get_any_name()] for p in model.inputs}})[0]"""),
}  # fmt: skip


def _runtime_card(run: Run, fmt: str, quantize: str) -> str:
    library, title, int8_note, load = _RUNTIME_CARDS[fmt]
    int8 = quantize == "int8"
    return f"""---
library_name: {library}
base_model: {run.config.model}
pipeline_tag: text-classification
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
