"""`lora-sentiment bench-engines RUN --data FILE`: one run's prediction through every engine, side by side in one
run: the tutorial's way (the unmerged PEFT model in fp32, 4 reviews at a time), this project's torch path, and
its ONNX Runtime and OpenVINO exports (fp32 and int8).

Each engine is measured twice, each time in a fresh process: the steady-state loop (model loaded, warmed up,
then every text predicted) and the whole command as a user runs it (`lora-sentiment predict TARGET --input
FILE --output FILE`, or the tutorial's script doing the same), start-up and loading included. Accuracy is on
the same labelled rows for every engine."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..export.compiled import CACHE_DIR
from ..measure import peak_rss_mb
from ..opening import resolve_engine_target
from ..options import LoadOptions
from .harness import CLI_CHILD, in_fresh_process, machine_description, quiet, whole_command
from .options import EngineBenchOptions
from .speed import phase_predict_baseline

TUTORIAL = "the tutorial's way"
# The tutorial's prediction as a whole script (tutorial.py): read the file, load the base model and the adapter
# in fp32, predict 4 reviews at a time, write the predictions.
TUTORIAL_CHILD = ["-m", "lora_sentiment.bench.tutorial"]


def available_exports() -> dict[str, tuple[str, str]]:
    """Each registered engine that runs without torch and is installed here, in each of its quantizations:
    its label ("onnx", "onnx int8", ...) -> (format, quantization)."""
    from ..export.engines import ENGINES, engine

    found = {}
    for name in ENGINES:
        chosen = engine(name)
        if chosen.model_file is None or chosen.missing_modules():
            continue
        for quantize in chosen.quantizations:
            found[name if quantize == "none" else f"{name} {quantize}"] = (name, quantize)
    return found


def phase_steady(target: str, texts: list[str], flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """The loaded model's loop: a warm-up batch, then every text, timed. `flags`: --engine / --precision."""
    quiet()
    from ..opening import open_predictor

    given = dict(zip(flags[::2], flags[1::2]))
    options = LoadOptions(**{k.removeprefix("--"): v for k, v in given.items()})
    classifier = open_predictor(target, options, expected_texts=len(texts))  # the engine a job of this size gets
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


def _whole_command(argv: list[str], output: Path) -> dict[str, Any]:
    """The harness's whole-command measure, and the labels the command wrote."""
    result = whole_command(argv)
    result["predicted"] = pd.read_csv(output)["predicted_label"].tolist()
    return result


def run_engine_bench(run_dir: str, options: EngineBenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    from ..export.writing import export_run
    from ..runs.run import Run

    quiet()
    run = Run.open(run_dir)
    check_single_label(run.space.problem_type)
    frame = _labelled_rows(options.data, options.rows, run)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()
    report: dict[str, Any] = {"machine": machine_description("cpu"), "run": run_dir, "rows": len(frame)}
    with tempfile.TemporaryDirectory(prefix="lora-sentiment-engines-") as scratch:
        scratch = Path(scratch)
        source = scratch / "in.csv"
        frame[["text", "label"]].to_csv(source, index=False)
        # The run as a user has it: torch forced (fp32, and the machine's auto precision), and the default
        # (--engine auto), timed on a copy with no compiled model: its first call (torch until the run's texts
        # repay a compile, export/compiled.py), then compiled as it is once they have.
        cold = scratch / "run"
        shutil.copytree(run_dir, cold, ignore=shutil.ignore_patterns(CACHE_DIR))
        targets: dict[str, tuple[str, tuple[str, ...]]] = {
            "torch fp32": (run_dir, ("--engine", "torch", "--precision", "fp32")),
            "torch": (run_dir, ("--engine", "torch")),
            "default (first call)": (str(cold), ()),
            "default": (str(cold), ()),
        }
        for name, (fmt, quantize) in available_exports().items():
            log(f"Exporting: {name}...")
            out = scratch / name.replace(" ", "-")
            targets[name] = (str(export_run(run_dir, out, format=fmt, quantize=quantize, log=lambda _: None)), ())
        log(f"Measuring: {TUTORIAL}...")
        report[TUTORIAL] = _tutorial(run, texts, labels, source, scratch)
        for name, (target, flags) in targets.items():
            log(f"Measuring: {name}...")
            if name == "default":
                resolve_engine_target(target, LoadOptions(), log=lambda _: None)  # compiled, as after 4,000 texts
            out = scratch / "out.csv"
            argv = ["-c", CLI_CHILD, "predict", target, "--input", str(source), "--output", str(out), *flags]
            whole = _whole_command([*argv, "--no-progress", "--overwrite"], out)  # first: the cold call compiles
            steady = in_fresh_process(phase_steady, target, texts, flags)
            report[name] = _entry(steady, whole, labels)
    return _with_ratios(report)


def _tutorial(run: Any, texts: list[str], labels: list[int], source: Path, scratch: Path) -> dict[str, Any]:
    classes, max_length = len(run.space.names), run.config.max_length
    steady = in_fresh_process(phase_predict_baseline, str(run.path), run.config.model, texts, max_length, classes)
    out = scratch / "tutorial.csv"
    argv = [*TUTORIAL_CHILD, str(run.path), run.config.model, str(source), str(out), str(max_length), str(classes)]
    return _entry(steady, _whole_command(argv, out), labels)


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
    tutorial, torch_labels = report[TUTORIAL], report["torch fp32"]["predicted"]
    for _, entry in _engines(report):
        entry["steady_vs_tutorial"] = entry["steady"]["samples_per_second"] / tutorial["steady"]["samples_per_second"]
        entry["whole_vs_tutorial"] = tutorial["whole_command"]["seconds"] / entry["whole_command"]["seconds"]
        predicted = entry.pop("predicted")
        entry["label_agreement_with_torch"] = sum(map(int.__eq__, predicted, torch_labels)) / len(torch_labels)
    return report


def _engines(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in report.items() if isinstance(v, dict) and "steady" in v]


def check_data(data: str) -> None:
    if not Path(data).is_file():
        raise UserError(f"--data {data} not found: give a CSV, TSV, JSONL or Parquet file with text and label columns")


def check_single_label(problem_type: str) -> None:
    """The tutorial's way is a classifier that takes the top class: multi-label tags and regression values have no
    counterpart in it to time against."""
    if problem_type != "single-label":
        raise UserError(
            f"bench-engines compares with the tutorial's classifier: give a single-label run (this one is "
            f"{problem_type}; time its engines with `predict RUN --input FILE --engine torch|openvino|onnx`)"
        )


def _labelled_rows(data: str, rows: int, run: Any) -> pd.DataFrame:
    """A stratified, seeded `rows` of the file, read as `evaluate` reads it for this run (the run's columns and
    label names, or the ids; its one-line errors), labels as the run's ids."""
    from ..inference.evaluation import labelled_rows
    from ..options import EvalOptions

    check_data(data)
    dataset = labelled_rows(data, EvalOptions(max_samples=rows), run.config, run.space).dataset
    return pd.DataFrame({"text": dataset["text"], "label": [int(label) for label in dataset["label"]]})


def format_engine_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['rows']} reviews, run {report['run']}; CPU class {report['machine'].get('cpu_class', '?')}",
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
