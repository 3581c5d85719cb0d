"""Where the prediction loop's time goes on this CPU, per engine, side by side in one process: torch as `predict
--engine torch` runs it (the run's precision, merged LoRA, length-sorted batches) under torch.profiler, with the
rate each kind of kernel reaches; and OpenVINO models (the run's compiled IR, an int8 export) with OpenVINO's own
per-node counters, grouped by node type and by the kernel that ran it.

    python benchmarks/profile_predict.py RUN ../shared/data/imdb-sample/validation.parquet --rows 160 \
        --openvino RUN/.compiled/openvino-* EXPORT_INT8 --output profile-predict.json

For the targets that are missed: the time of a whole `predict` is this loop plus start-up, so these shares say
what a faster kernel would buy."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd


def torch_profile(run: Path, texts: list[str], batch_size: int, top: int) -> dict:
    import torch

    from lora_sentiment.opening import open_predictor
    from lora_sentiment.options import LoadOptions

    predictor = open_predictor(run, LoadOptions(engine="torch"))
    predictor.predict_scores(texts[:batch_size], batch_size=batch_size)  # oneDNN picks its kernels per shape
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, record_shapes=True, with_flops=True) as profile:
        start = time.perf_counter()
        predictor.predict_scores(texts, batch_size=batch_size)
        seconds = time.perf_counter() - start
    events = profile.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ops = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    # Reached rates: the profiler counts matmul FLOPs itself; attention's are 4·B·H·S·S·D (QKᵀ and the weighted
    # sum), from the recorded query shapes.
    rates = {}
    for name in ("aten::addmm", "aten::mm", "aten::bmm"):
        found = [e for e in events if e.key == name]
        if found and found[0].flops:
            rates[name] = found[0].flops / (found[0].self_cpu_time_total * 1e-6) / 1e9
    attention = [e for e in profile.events() if e.name == "aten::_scaled_dot_product_flash_attention_for_cpu"]
    if attention:
        flops = sum(4 * b * h * s * s * d for (b, h, s, d) in (e.input_shapes[0] for e in attention))
        rates["sdpa (flash, cpu)"] = flops / (sum(e.self_cpu_time_total for e in attention) * 1e-6) / 1e9
    return {
        "precision": predictor.precision,
        "seconds": round(seconds, 2),
        "top_ops": [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in ops],
        "gflops_per_s": {k: round(v, 1) for k, v in rates.items()},
    }


def openvino_profile(folder: Path, texts: list[str], batch_size: int, top: int) -> dict:
    import openvino

    from lora_sentiment.export.engines.openvino import MODEL_FILE
    from lora_sentiment.export.folder import ExportedClassifier

    predictor = ExportedClassifier.open(folder)
    session = predictor.session
    # The session's own settings with the per-node counters on, one request at a time (the counters are a
    # request's): a job's batches side by side on throughput streams (session.map) are profiled in turn here.
    compiled = openvino.Core().compile_model(
        str(folder / MODEL_FILE), "CPU", {**session.hints, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    )
    session._request = compiled.create_infer_request()
    session.map = lambda batches: [session(feeds) for feeds in batches]
    by_type: dict[str, float] = defaultdict(float)
    by_kernel: dict[str, float] = defaultdict(float)
    infer = session._request.infer

    def counted(feeds: dict) -> object:
        out = infer(feeds)
        for node in session._request.get_profiling_info():
            if node.status == node.Status.EXECUTED:
                by_type[node.node_type] += node.real_time.total_seconds()
                by_kernel[f"{node.node_type} / {node.exec_type}"] += node.real_time.total_seconds()
        return out

    predictor.predict_scores(texts[:batch_size], batch_size=batch_size)
    session._request.infer = counted
    start = time.perf_counter()
    predictor.predict_scores(texts, batch_size=batch_size)
    seconds = time.perf_counter() - start
    total = sum(by_type.values())

    def shares(table: dict) -> list:
        ranked = sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [{"node": k, "share": round(v / total, 3)} for k, v in ranked]

    return {"precision": predictor.precision, "seconds": round(seconds, 2), "by_type": shares(by_type),
            "by_kernel": shares(by_kernel)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", help="a Parquet or CSV file with a text column")
    parser.add_argument("--rows", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--openvino", type=Path, nargs="*", default=[], help="OpenVINO export folders to profile")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--output")
    args = parser.parse_args()
    from lora_sentiment.modeling.cpu import this_cpu

    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    texts = read(args.data)["text"].sample(args.rows, random_state=1).tolist()
    report = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().describe(), "rows": args.rows,
              "batch_size": args.batch_size, "results": {}}  # fmt: skip
    results = report["results"]
    results["torch"] = torch_profile(args.run, texts, args.batch_size, args.top)
    for folder in args.openvino:
        results[f"openvino {folder.name}"] = openvino_profile(folder, texts, args.batch_size, args.top)
    for name, result in results.items():
        print(f"\n{name} ({result['precision']}): {result['seconds']} s for {args.rows} texts")
        for row in result.get("top_ops", []) + result.get("by_kernel", []):
            print(f"  {row['share']:6.1%}  {row.get('op') or row.get('node')}")
        for kernel, rate in result.get("gflops_per_s", {}).items():
            print(f"  {kernel}: {rate} GFLOP/s")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
