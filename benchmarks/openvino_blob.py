"""Would a cached compiled blob save `predict` time? OpenVINO compile of an export's IR against importing the blob
that `compiled.export_model()` writes, per performance hint, in one process.

    python benchmarks/openvino_blob.py EXPORT_F32 EXPORT_INT8 --rounds 3 --output benchmarks/results/x.json

Prints (and writes) seconds to read, compile, export and import, the blob's size, and whether the imported model
answers as the compiled one. The compile and import run with the hints `OpenVinoSession` uses."""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(folder: Path, hint: str, precision: str, threads: int) -> dict:
    import openvino

    core = openvino.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint}
    xml = str(folder / "openvino_model.xml")
    start = time.perf_counter()
    core.read_model(xml)
    read = time.perf_counter() - start
    start = time.perf_counter()
    compiled = core.compile_model(xml, "CPU", config)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    buffer = io.BytesIO()
    compiled.export_model(buffer)
    export_s = time.perf_counter() - start
    with tempfile.NamedTemporaryFile(suffix=".blob") as blob:
        blob.write(buffer.getvalue())
        blob.flush()
        start = time.perf_counter()
        imported = core.import_model(io.BytesIO(Path(blob.name).read_bytes()), "CPU", config)
        import_s = time.perf_counter() - start
    feeds = {port.get_any_name(): np.ones((4, 64), dtype=np.int64) for port in compiled.inputs}
    answers = [model.create_infer_request().infer(feeds)[0] for model in (compiled, imported)]
    return {"export": str(folder), "hint": hint, "read_s": read, "compile_s": compile_s, "export_s": export_s,
            "import_s": import_s, "blob_mb": len(buffer.getvalue()) / 1e6,
            "max_difference": float(np.abs(answers[0] - answers[1]).max())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="bf16", help="INFERENCE_PRECISION_HINT: bf16 or f32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    from lora_sentiment.modeling.cpu import this_cpu

    rows = []
    for round_ in range(args.rounds):
        for folder in args.exports:
            for hint in ("THROUGHPUT", "LATENCY"):
                row = {"round": round_, **measure(folder, hint, args.precision, args.threads)}
                print(json.dumps(row))
                rows.append(row)
    result = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().name, "cpu": this_cpu().model, "rows": rows}
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
