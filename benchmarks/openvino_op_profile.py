"""Where an OpenVINO export's prediction time goes, by the runtime's own per-layer counters (PERF_COUNT), and how
near its linear layers run to what the CPU's units can do: one length-sorted batch of real reviews as `predict`
makes them, the time per kind of layer and kernel, and the multiply-adds a second the linear layers reached
(their weights' sizes times the batch's tokens, over the time of the layers that run them). Beside it, a matmul
of the same kind of numbers on its own (torch: int8 through `torch._int_mm`, bf16 or fp32) as the ceiling.

    python benchmarks/openvino_op_profile.py EXPORT REVIEWS.csv [--batch-size 32] [--output FILE.json]

EXPORT: a folder of `export --format openvino` (int8 or not), or a run's compiled model (RUN/.compiled/...).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

# The nodes that carry a linear layer's weights, through the int8 model's dequantizing ops.
WEIGHT_PATH = {"Convert", "Subtract", "Multiply", "FakeQuantize", "Reshape", "Transpose"}


def linear_macs_per_token(model) -> int:
    """The weights of every MatMul whose second input is a constant (through dequantizing ops): each is one
    multiply-add per token."""
    total = 0
    for op in model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        node = op.input_value(1).get_node()
        while node.get_type_name() in WEIGHT_PATH:
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant":
            total += int(np.prod(list(node.get_output_shape(0))))
    return total


def main() -> None:
    import openvino as ov

    from lora_sentiment.export.folder import ExportedClassifier
    from lora_sentiment.modeling.cpu import this_cpu

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("reviews", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    classifier = ExportedClassifier.open(args.export)
    texts = pd.read_csv(args.reviews)["text"].tolist()
    encoded, _ = classifier.encoder.encode(texts, classifier.long_text, classifier.stride)
    from lora_sentiment.data.encoding import padded_batches

    # the middle batch of the length-sorted ones `predict` runs: a typical length
    batches = list(padded_batches(classifier.encoder.tokenizer, encoded, classifier.inputs, args.batch_size))
    _, feeds = batches[len(batches) // 2]
    tokens = int(feeds["attention_mask"].sum())
    core = ov.Core()
    compute = classifier.session.compute
    threads = classifier.options.threads or os.cpu_count() or 1  # as `predict` runs it
    hints = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
             "INFERENCE_PRECISION_HINT": "bf16" if compute == "bf16" else "f32", "PERF_COUNT": True}  # fmt: skip
    model = core.read_model(str(args.export / "openvino_model.xml"))
    macs = linear_macs_per_token(model)
    request = core.compile_model(model, "CPU", hints).create_infer_request()
    for _ in range(2):
        request.infer(feeds)
    by_kind: collections.Counter = collections.Counter()
    walls = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        request.infer(feeds)
        walls.append(time.perf_counter() - started)
        for layer in request.profiling_info:
            by_kind[(layer.node_type, layer.exec_type)] += layer.real_time.total_seconds() / args.repeats
    counted = sum(by_kind.values())
    linear = sum(t for (kind, _), t in by_kind.items() if kind.startswith("FullyConnected"))
    shape = list(feeds["input_ids"].shape)
    padded = int(np.prod(shape))
    report = {
        "export": str(args.export),
        "quantization": json.loads((args.export / "export.json").read_text()).get("quantization", "none"),
        "compute": compute,
        "cpu_class": this_cpu().name,
        "date": time.strftime("%Y-%m-%d"),
        "batch": shape,
        "tokens": tokens,
        "wall_seconds": round(min(walls), 4),
        "counted_seconds": round(counted, 4),
        "by_kind": {f"{k} ({e})": round(t / counted, 3) for (k, e), t in by_kind.most_common() if t / counted >= 5e-4},
        "linear_macs_per_token": macs,
        # the layers run on padded rows too: the rate they reached counts those
        "linear_gmacs_per_second": round(macs * padded / linear / 1e9, 1) if linear else None,
    }
    kind = "int8" if report["quantization"] == "int8" else compute
    report["ceiling_gmacs_per_second"] = _matmul_ceiling(kind, hints["INFERENCE_NUM_THREADS"])
    for key, value in report.items():
        print(f"{key}: {value}")
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")


def _matmul_ceiling(kind: str, threads: int, n: int = 2048, seconds: float = 2.0) -> dict[str, float]:
    """A large matmul alone in torch, best of a few, in the numbers the export's linear layers use: int8
    (`torch._int_mm`, oneDNN's VNNI kernels where the CPU has them), bf16 or fp32; billions of multiply-adds a
    second."""
    import torch

    torch.set_num_threads(threads)
    if kind == "int8":
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        run = lambda: torch._int_mm(a, b)  # noqa: E731
    else:
        dtype = torch.bfloat16 if kind == "bf16" else torch.float32
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        run = lambda: a @ b  # noqa: E731
    run()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return {kind: round(n**3 / best / 1e9, 1)}


if __name__ == "__main__":
    main()
