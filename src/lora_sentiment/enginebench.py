"""`lora-sentiment bench-engines RUN --data FILE`: one run's prediction through every engine, side by side in one
run: the tutorial's way (the unmerged PEFT model in fp32, 4 reviews at a time), this project's torch path, and
its ONNX Runtime and OpenVINO exports (fp32 and int8).

Each engine is measured twice, each time in a fresh process: the steady-state loop (model loaded, warmed up,
then every text predicted) and the whole command as a user runs it (`lora-sentiment predict TARGET --input
FILE --output FILE`, or the tutorial's script doing the same), start-up and loading included. Accuracy is on
the same labelled rows for every engine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .bench import _in_fresh_process, _quiet, machine_description, phase_predict_baseline
from .errors import UserError
from .measure import peak_rss_mb

TUTORIAL = "the tutorial's way"
# A child that runs the CLI and reports its own peak RSS, so start-up and loading are counted.
CLI_CHILD = (
    "import sys; from lora_sentiment.cli import main; from lora_sentiment.measure import peak_rss_mb; "
    "code = main(sys.argv[1:]); print('PEAK_RSS_MB', peak_rss_mb(), file=sys.stderr); sys.exit(code)"
)
# The tutorial's prediction as a whole script: read the file, load the base model and the adapter in fp32,
# predict 4 reviews at a time, write the predictions.
TUTORIAL_CHILD = """
import sys
import pandas as pd, torch
from lora_sentiment.measure import peak_rss_mb
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer
run, base, source, target, max_length = sys.argv[1:6]
frame = pd.read_csv(source)
tokenizer = AutoTokenizer.from_pretrained(run)
tokenizer.truncation_side = "left"
model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=2), run).eval()
texts, predicted = frame["text"].tolist(), []
with torch.no_grad():
    for i in range(0, len(texts), 4):
        batch = tokenizer(texts[i : i + 4], truncation=True, max_length=int(max_length), padding=True,
                          return_tensors="pt")
        predicted += model(**batch).logits.argmax(-1).tolist()
frame["predicted_label"] = predicted
frame.to_csv(target, index=False)
print("PEAK_RSS_MB", peak_rss_mb(), file=sys.stderr)
"""


EXPORTED_ENGINES = {
    "onnx fp32": ("onnx", "none"), "onnx int8": ("onnx", "int8"),
    "openvino": ("openvino", "none"), "openvino int8": ("openvino", "int8"),
}  # fmt: skip


def available_exports() -> dict[str, tuple[str, str]]:
    """Engine name -> (format, quantization), for the runtimes installed here."""
    from .exported import missing_modules

    return {name: how for name, how in EXPORTED_ENGINES.items() if not missing_modules(how[0])}


def phase_steady(target: str, texts: list[str]) -> dict[str, Any]:
    """The loaded model's loop: a warm-up batch, then every text, timed."""
    _quiet()
    from .exported import open_classifier

    classifier = open_classifier(target)
    classifier.predict_scores(texts[:32])
    start = time.perf_counter()
    scores = classifier.predict_scores(texts)
    seconds = time.perf_counter() - start
    return {
        "samples_per_second": len(texts) / seconds,
        "precision": classifier.precision,
        "predicted": scores.argmax(1).tolist(),
        "peak_rss_mb": peak_rss_mb(),
    }


def whole_command(argv: list[str], output: Path) -> dict[str, Any]:
    """Wall seconds and peak RSS of a fresh interpreter running `argv`; the CLI's stage seconds if it printed them."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise UserError(f"{' '.join(argv[:3])}... failed: {done.stderr.strip().splitlines()[-1:]}")
    result = {"seconds": seconds, "peak_rss_mb": float(re.findall(r"PEAK_RSS_MB ([\d.]+)", done.stderr)[-1])}
    stages = re.findall(r"Seconds: (.*)", done.stderr)
    if stages:
        result["stages"] = {k: float(v) for k, v in (part.rsplit(" ", 1) for part in stages[-1].split(", "))}
    result["predicted"] = pd.read_csv(output)["predicted_label"].tolist()
    return result


def run_engine_bench(
    run_dir: str, data: str, *, rows: int = 1000, log: Callable[[str], None] = print
) -> dict[str, Any]:
    from .export import export_onnx, export_openvino
    from .run import Run

    _quiet()
    run = Run.open(run_dir)
    if run.space.problem_type != "single-label" or len(run.space.names) != 2:
        raise UserError("bench-engines compares with the tutorial's binary classifier: give a 2-class run")
    frame = _labelled_rows(data, rows)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    report: dict[str, Any] = {"machine": machine_description("cpu"), "run": run_dir, "rows": len(frame)}
    with tempfile.TemporaryDirectory(prefix="lora-sentiment-engines-") as scratch:
        scratch = Path(scratch)
        source = scratch / "in.csv"
        frame[["text", "label"]].to_csv(source, index=False)
        targets = {"torch (default)": run_dir}
        exporters = {"onnx": export_onnx, "openvino": export_openvino}
        for name, (fmt, quantize) in available_exports().items():
            log(f"Exporting: {name}...")
            out = scratch / name.replace(" ", "-")
            targets[name] = str(exporters[fmt](run_dir, out, quantize=quantize, log=lambda _: None))
        log(f"Measuring: {TUTORIAL}...")
        report[TUTORIAL] = _tutorial(run, texts, labels, source, scratch)
        for name, target in targets.items():
            log(f"Measuring: {name}...")
            steady = _in_fresh_process(phase_steady, target, texts)
            out = scratch / "out.csv"
            argv = ["-c", CLI_CHILD, "predict", target, "--input", str(source), "--output", str(out)]
            whole = whole_command([*argv, "--no-progress", "--overwrite"], out)
            report[name] = _entry(steady, whole, labels)
    return _with_ratios(report)


def _tutorial(run: Any, texts: list[str], labels: list[int], source: Path, scratch: Path) -> dict[str, Any]:
    steady = _in_fresh_process(phase_predict_baseline, str(run.path), run.config.model, texts, run.config.max_length)
    out = scratch / "tutorial.csv"
    argv = ["-c", TUTORIAL_CHILD, str(run.path), run.config.model, str(source), str(out), str(run.config.max_length)]
    return _entry(steady, whole_command(argv, out), labels)


def _entry(steady: dict[str, Any], whole: dict[str, Any], labels: list[int]) -> dict[str, Any]:
    """Accuracy from the labels the whole command wrote (the steady loop's are the same model's)."""
    predicted = whole.pop("predicted")
    steady.pop("predicted", None)
    rows = len(labels)
    whole["samples_per_second"] = rows / whole["seconds"]
    accuracy = sum(int(p == y) for p, y in zip(predicted, labels)) / rows
    return {"steady": steady, "whole_command": whole, "accuracy": accuracy, "predicted": predicted}


def _with_ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Each engine against the tutorial's way, and its agreement with the torch path's labels."""
    tutorial, torch_labels = report[TUTORIAL], report["torch (default)"]["predicted"]
    for _, entry in _engines(report):
        entry["steady_vs_tutorial"] = entry["steady"]["samples_per_second"] / tutorial["steady"]["samples_per_second"]
        entry["whole_vs_tutorial"] = tutorial["whole_command"]["seconds"] / entry["whole_command"]["seconds"]
        predicted = entry.pop("predicted")
        entry["label_agreement_with_torch"] = sum(map(int.__eq__, predicted, torch_labels)) / len(torch_labels)
    return report


def _engines(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in report.items() if isinstance(v, dict) and "steady" in v]


def _labelled_rows(data: str, rows: int) -> pd.DataFrame:
    """The first `rows` rows, read by `predict --input`'s own reader (its formats, its one-line errors)."""
    from .batch import INPUT_FORMATS, checked_chunks, resolve_format

    if not Path(data).is_file():
        raise UserError(f"--data {data} not found: give a CSV, TSV, JSONL or Parquet file with text and label columns")
    fmt = resolve_format(data, None, INPUT_FORMATS, "--data", "csv")
    chunks = checked_chunks(data, fmt, rows, format_fix="or give --data the extension of its format")
    frame = next(chunks, pd.DataFrame())
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise UserError(
            f"--data {data} has no {', '.join(sorted(missing))} column; columns: {', '.join(frame.columns)}"
        )
    return frame.head(rows).reset_index(drop=True)


def format_engine_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['rows']} reviews, run {report['run']}",
        f"{'engine':<20} {'steady/s':>9} {'x tut':>6} {'whole s':>8} {'x tut':>6} {'RSS MB':>7} {'acc':>6} "
        f"{'agree':>6}",
    ]
    for name, entry in _engines(report):
        steady, whole = entry["steady"], entry["whole_command"]
        lines.append(
            f"{name:<20} {steady['samples_per_second']:>9.1f} {entry['steady_vs_tutorial']:>6.2f} "
            f"{whole['seconds']:>8.1f} {entry['whole_vs_tutorial']:>6.2f} {whole['peak_rss_mb']:>7.0f} "
            f"{entry['accuracy']:>6.3f} {entry['label_agreement_with_torch']:>6.3f}"
        )
        if "stages" in whole:
            lines.append(" " * 22 + ", ".join(f"{k} {v:.1f}" for k, v in whole["stages"].items()))
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(report, indent=2), encoding="utf-8")
