"""OpenVINO IR converted from torch (what `export --format openvino` and the compiled cache write since 2026-12-03)
against IR converted from the ONNX graph (before): the same merged run, f32 and int8 (NNCF, the same scope and
calibration texts for both), timed in interleaved rounds in one process beside torch at the run's precision, and
each model's labels and probabilities against torch fp32.

    python benchmarks/openvino_conversion.py RUN ../shared/data/imdb-sample/validation.parquet --rows 500 \
        --output benchmarks/results/openvino-conversion-amx-cpu-2026-12-03.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build(run_dir: Path, out: Path, route: str, int8_scope: str | None) -> None:
    """An export folder of the run whose IR is converted `route` ("torch" or "onnx")."""
    import openvino

    from lora_sentiment.export.engines import openvino as engine
    from lora_sentiment.export.engines.onnx import write_onnx
    from lora_sentiment.export.quiet import quiet_compile
    from lora_sentiment.export.writing import export_run
    from lora_sentiment.runs.run import Run

    with quiet_compile():
        export_run(run_dir, out, format="openvino", log=lambda _: None)
        if route == "onnx":
            from lora_sentiment.export.writing import _calibration_in_weights
            from lora_sentiment.modeling.model import load_run_model

            run = Run.open(run_dir)
            model, tokenizer = load_run_model(run)
            model.eval()
            _calibration_in_weights(model, run.space)
            graph = out / "model.fp32.onnx"
            write_onnx(model, tokenizer, graph, "none")
            openvino.save_model(
                openvino.convert_model(str(graph)), str(out / engine.MODEL_FILE), compress_to_fp16=False
            )
            graph.unlink()
        if int8_scope:
            f32 = out.with_name(out.name + "-f32")
            out.rename(f32)
            engine.quantize_folder(f32, out, Run.open(run_dir), 256, int8_scope)
            shutil.rmtree(f32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", help="a Parquet or CSV file with a text column")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--int8-scope", default="no-output-projections")
    parser.add_argument("--output")
    args = parser.parse_args()
    from lora_sentiment.export.folder import ExportedClassifier
    from lora_sentiment.inference.classifier import Classifier
    from lora_sentiment.modeling.cpu import this_cpu

    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    texts = read(args.data)["text"].sample(args.rows, random_state=1).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        predictors = {"torch": Classifier.from_run(args.run)}
        for route in ("onnx", "torch"):
            for scope in (None, args.int8_scope):
                name = f"openvino from {route}" + (" int8" if scope else "")
                folder = Path(tmp) / name.replace(" ", "-")
                build(args.run, folder, route, scope)
                predictors[name] = ExportedClassifier.open(folder)
        for predictor in predictors.values():
            predictor.predict_scores(texts[:32])  # first-call allocations
        seconds: dict[str, list[float]] = {name: [] for name in predictors}
        scores = {}
        for _ in range(args.rounds):  # interleaved: a shared machine's slow minutes fall on every engine alike
            for name, predictor in predictors.items():
                start = time.perf_counter()
                scores[name] = predictor.predict_scores(texts)
                seconds[name].append(round(time.perf_counter() - start, 2))
        reference = Classifier.from_run(args.run, precision="fp32").predict_scores(texts)
    results = {
        name: {
            "precision": predictor.precision,
            "seconds": seconds[name],
            "median_s": float(np.median(seconds[name])),
            "labels_equal_to_torch_fp32": float((scores[name].argmax(1) == reference.argmax(1)).mean()),
            "largest_probability_change": round(float(np.abs(scores[name] - reference).max()), 4),
        }
        for name, predictor in predictors.items()
    }
    for name, result in results.items():
        print(f"{name} ({result['precision']}): {result['seconds']} s; labels equal to torch fp32 "
              f"{result['labels_equal_to_torch_fp32']:.3f}, largest probability change "
              f"{result['largest_probability_change']}")  # fmt: skip
    record = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().describe(), "rows": args.rows,
              "int8_scope": args.int8_scope, "results": results}  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
