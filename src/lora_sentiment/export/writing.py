"""Export stage: fold the LoRA weights into the base model and write it for an engine (engines/): a standalone
transformers model (`pipeline("text-classification", model=OUT_DIR)`, no peft), ONNX or OpenVINO IR (optionally
int8), the last two opened without torch by folder.py. The folder appears complete or not at all."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..atomic import check_writable, claimed, staged
from ..data.loading import check_source
from ..errors import UserError, format_validation_error
from ..options import ExportOptions
from ..problems.space import LabelSpace
from ..runs.run import EXPORT_CARD_FILE, EXPORT_INFO_FILE, Run
from .engines import engine
from .engines.onnx import OPSET

Log = Callable[[str], None]


def export_run(
    run_dir: str | Path, out_dir: str | Path, options: ExportOptions | None = None, *, log: Log = print, **given: Any
) -> Path:
    """The run at `run_dir` exported to `out_dir` for `options.format` (`given`: ExportOptions' fields)."""
    try:
        options = ExportOptions.of(options, given)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, ExportOptions.model_fields)) from None
    with claimed(Path(out_dir), "OUT_DIR"):  # two exports to one place would share a staging folder
        return _export(Path(run_dir), Path(out_dir).expanduser(), options, log)


def _export(run_dir: Path, out_dir: Path, options: ExportOptions, log: Log) -> Path:
    chosen, run = check_export_settings(run_dir, out_dir, options)
    prepared = chosen.prepare(run, options)  # read before the model loads: a bad file fails at once
    from ..modeling.model import load_run_model  # torch: only once the settings are known to be good

    # With the base model's own dropout (not the training override): the export is also a starting point to tune.
    merged, tokenizer = load_run_model(run)
    merged.eval()
    space = _calibration_in_weights(merged, run.space)
    with staged(out_dir) as staging:
        names = chosen.write(merged, tokenizer, run, staging, options, prepared)
        tokenizer.save_pretrained(str(staging))
        run.copy_records(staging, space)
        if chosen.model_file is not None:  # the marker that predict / serve open it with the engine's runtime
            info = {"format": chosen.name, "quantization": options.quantize, "opset": OPSET, "inputs": names,
                    "run": run_dir.name}  # fmt: skip
            if chosen.calibrates(options):
                info["int8_scope"] = options.int8_scope
            (staging / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        (staging / EXPORT_CARD_FILE).write_text(chosen.card(run, options), encoding="utf-8")
    log(chosen.done(run, out_dir, options))
    return out_dir


def _calibration_in_weights(merged: Any, space: LabelSpace) -> LabelSpace:
    """A calibrated run's temperatures folded into the merged output layer, and the space the export records
    (which says so, so that nothing applies them twice)."""
    calibration = space.calibration
    if calibration is None or calibration.temperatures is None or calibration.in_weights:
        return space
    fold_temperatures(merged, calibration.temperatures)
    return replace(space, calibration=replace(calibration, in_weights=True))


def fold_temperatures(model: Any, temperatures: list[float]) -> None:
    """Each output's weights (and bias) divided by its temperature (one for all, or one each): the layer then
    gives logits / T itself."""
    import torch

    from ..modeling.model import output_layer

    output = output_layer(model, None if len(temperatures) == 1 else len(temperatures))
    scale = torch.as_tensor(temperatures, dtype=output.weight.dtype).reshape(-1, 1).expand(output.out_features, 1)
    with torch.no_grad():
        output.weight.div_(scale)
        if output.bias is not None:
            output.bias.div_(scale.reshape(-1))


def check_export_settings(run_dir: str | Path, out_dir: str | Path, options: ExportOptions) -> tuple[Any, Run]:
    """The export's settings, before the model loads: the folder may be written, the engine's packages and
    options are there, the run opens. The engine and the run."""
    chosen = engine(options.format)
    _check_out_dir(Path(run_dir), Path(out_dir).expanduser(), options.overwrite)
    chosen.check(options)
    if options.calibration_data:
        check_source(options.calibration_data, "--calibration-data")
    return chosen, Run.open(run_dir)


def _check_out_dir(run_dir: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.resolve() == run_dir.resolve():
        raise UserError("OUT_DIR must differ from RUN_DIR: the export is a separate, standalone model")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise UserError(f"{out_dir} exists and is not empty; pass --overwrite to replace it or choose another OUT_DIR")
    check_writable(out_dir, "OUT_DIR")


# The calls of 0.2, one per format (deprecated: export_run with ExportOptions(format=...)).
def export_merged(run_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False, log: Log = print) -> Path:
    return export_run(run_dir, out_dir, ExportOptions(overwrite=overwrite), log=log)


def export_onnx(run_dir: str | Path, out_dir: str | Path, *, quantize: str = "none", overwrite: bool = False,
                log: Log = print) -> Path:  # fmt: skip
    return export_run(run_dir, out_dir, format="onnx", quantize=quantize, overwrite=overwrite, log=log)


def export_openvino(run_dir: str | Path, out_dir: str | Path, *, log: Log = print, **given: Any) -> Path:
    """`given`: quantize, calibration_data, calibration_samples, overwrite."""
    return export_run(run_dir, out_dir, format="openvino", log=log, **given)
