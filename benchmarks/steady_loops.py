"""The prediction loops alone (no start-up, no files), side by side in one process: OpenVINO bf16 at several batch
sizes, OpenVINO f32, OpenVINO int8 (quantized from the compiled IR as the per-run check does, with and without the
output projections), and torch at the run's precision. For choosing the engine per CPU class.

    python benchmarks/steady_loops.py RUN validation.parquet --rows 500 --output steady.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd


def timed(name: str, predictor: object, texts: list[str], batch_size: int, results: dict) -> None:
    predictor.predict_scores(texts[:32], batch_size=batch_size)  # warm-up: first-call allocations
    start = time.perf_counter()
    predictor.predict_scores(texts, batch_size=batch_size)
    results[name] = round(time.perf_counter() - start, 2)
    print(f"{name}: {results[name]} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", help="a Parquet or CSV file with a text column")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--output")
    args = parser.parse_args()
    from lora_sentiment.export.compiled import compiled_export
    from lora_sentiment.export.engines.openvino import quantize_folder
    from lora_sentiment.export.folder import ExportedClassifier
    from lora_sentiment.export.quiet import quiet_compile
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.opening import open_predictor
    from lora_sentiment.options import LoadOptions
    from lora_sentiment.runs.run import Run

    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    texts = read(args.data)["text"].tolist()[: args.rows]
    results: dict[str, float] = {}
    f32 = compiled_export(args.run, "openvino", lambda _: None)
    for batch in (8, 16, 32, 64):
        timed(f"openvino-bf16-or-f32-batch-{batch}", ExportedClassifier.open(f32), texts, batch, results)
    timed("openvino-f32-batch-32", ExportedClassifier.open(f32, precision="fp32"), texts, 32, results)
    with tempfile.TemporaryDirectory() as tmp:
        for scope in ("no-output-projections", "all"):
            start = time.perf_counter()
            with quiet_compile():
                quantize_folder(f32, Path(tmp) / scope, Run.open(args.run), 128, scope, ("int8.json", "predicted.json"))
            results[f"quantize-int8-{scope}-seconds"] = round(time.perf_counter() - start, 1)
            timed(f"openvino-int8-{scope}-batch-32", ExportedClassifier.open(Path(tmp) / scope), texts, 32, results)
    torch = open_predictor(args.run, LoadOptions(engine="torch"))
    for batch in (16, 32):
        timed(f"torch-{torch.precision}-batch-{batch}", torch, texts, batch, results)
    record = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().describe(), "rows": len(texts),
              "seconds": results}  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
