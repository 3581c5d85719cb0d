"""Memory of serving many LoRA runs of one base model: one server with 1, 4 and 16 runs against 1 and 4 separate
single-run servers.

    python benchmarks/multi_serve.py --run runs/minilm-256 --counts 1 4 16 --separate 4 \
        --output benchmarks/results/multi-serve-memory-cpu-2026-11-27.json

The runs are copies of --run (named r00, r01...), so every count serves runs of the same size; each copy is
loaded as its own adapter and head, as a distinct run would be. Every server is `lora-sentiment serve` in a
child process on loopback; after each model has answered 4 requests of real reviews and the server a burst of
256 concurrent ones (16 clients, spread evenly over its models), its resident memory is read from /proc: the
peak (VmHWM) and now (VmRSS). Separate servers run at the same time, each gets the burst, and they are summed."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import httpx
import pandas as pd

from lora_sentiment.bench.serve_load import ServerProcess, free_port, run_load, traffic_mix

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb-sample"


def memory_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]


def warm(server: ServerProcess, models: list[str | None], texts: list[str], burst: int) -> None:
    """4 requests per model, then a burst of concurrent single-review requests spread evenly over the models."""
    for model in models:
        for text in texts[:4]:
            body = {"texts": [text]} | ({"model": model} if model else {})
            httpx.post(server.url + "/predict", json=body, timeout=120).raise_for_status()
    names = traffic_mix(models, "uniform", burst) if models != [None] else None
    result = asyncio.run(run_load(server.url, texts, requests=burst, concurrency=16, models=names))
    assert result.status_counts == {"200": burst}, result.status_counts


def measure(
    label: str, servers: list[ServerProcess], models: list[list[str | None]], texts: list[str], burst: int
) -> dict:
    for server in servers:
        server.__enter__()
    try:
        for server, names in zip(servers, models):
            warm(server, names, texts, burst)
        peak, now = map(sum, zip(*(memory_mb(s.process.pid) for s in servers)))
    finally:
        for server in servers:
            server.__exit__()
    print(f"{label:<40} peak {peak:7.0f} MB   now {now:7.0f} MB", flush=True)
    return {"label": label, "servers": len(servers), "peak_rss_mb": round(peak, 1), "rss_mb": round(now, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--separate", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--burst", type=int, default=256, help="concurrent requests sent to each server")
    parser.add_argument("--output")
    args = parser.parse_args()
    texts = pd.read_parquet(SAMPLE / "validation.parquet").text.tolist()
    folder = Path(tempfile.mkdtemp(prefix="multi-serve-"))
    runs = []
    for i in range(max(args.counts + args.separate)):
        runs.append(folder / f"r{i:02d}")
        shutil.copytree(args.run, runs[-1])
    results = []
    for count in args.separate:
        servers = [ServerProcess(runs[i], free_port()) for i in range(count)]
        results.append(measure(f"{count} separate single-run server(s)", servers, [[None]] * count, texts, args.burst))
    for count in args.counts:
        names = [r.name for r in runs[:count]]
        # One run alone would be served merged: --runs-dir makes it the shared-base server even then.
        given = [] if count == 1 else runs[:count]
        extra = ["--runs-dir", str(folder / "one")] if count == 1 else []
        if count == 1:
            (folder / "one").mkdir(exist_ok=True)
            shutil.copytree(runs[0], folder / "one" / runs[0].name, dirs_exist_ok=True)
        server = ServerProcess(given, free_port(), extra)
        results.append(measure(f"one server, {count} run(s) on one base", [server], [names], texts, args.burst))
    shutil.rmtree(folder)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
