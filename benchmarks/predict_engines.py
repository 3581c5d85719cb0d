"""`predict --input` as a whole command (start-up, loading, prediction, writing) on a run, its ONNX fp32 export
and its ONNX int8 export, side by side in one run: wall time, peak RSS, and accuracy on the same labelled rows.

    python benchmarks/predict_engines.py --run runs/minilm-256 --data ../shared/data/imdb-sample/validation.parquet
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

# Runs the CLI in a fresh interpreter and reports its own peak RSS, so start-up and loading are counted.
CHILD = (
    "import resource, sys; from lora_sentiment.cli import main; code = main(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'torch' in sys.modules, file=sys.stderr); "
    "sys.exit(code)"
)


def whole_command(target: Path, data: Path, out: Path) -> dict:
    started = time.perf_counter()
    args = ["predict", str(target), "--input", str(data), "--output", str(out), "--no-progress", "--overwrite"]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    rss, torch_loaded = done.stderr.strip().splitlines()[-1].split()
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(float(rss)), "torch_imported": torch_loaded == "True"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True, help="parquet with text and label columns")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--output", help="append the JSON result here")
    args = parser.parse_args()
    from lora_sentiment.export import export_onnx

    frame = pd.read_parquet(args.data).head(args.rows)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        frame[["text", "label"]].to_csv(scratch / "in.csv", index=False)
        targets = {
            "torch (the run)": Path(args.run),
            "onnx fp32": export_onnx(args.run, scratch / "fp32", log=lambda _: None),
            "onnx int8": export_onnx(args.run, scratch / "int8", quantize="int8", log=lambda _: None),
        }
        results = {"rows": len(frame), "run": args.run}
        for name, target in targets.items():
            whole_command(target, scratch / "in.csv", scratch / "warm.csv")  # file caches warm for every path
            measured = whole_command(target, scratch / "in.csv", scratch / "out.csv")
            predicted = pd.read_csv(scratch / "out.csv")
            measured["accuracy"] = round(float((predicted.predicted_label == predicted.label).mean()), 4)
            measured["reviews_per_second"] = round(len(frame) / measured["seconds"], 1)
            results[name] = measured
            print(name, measured, flush=True)
    line = json.dumps(results)
    print(line)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
