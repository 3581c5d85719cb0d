"""Throughput and peak memory of `lora-sentiment predict --input` and `train` as the input file grows.

    python benchmarks/memory_scaling.py predict --run runs/minilm-32 --rows 20000 200000 --workers 1 2
    python benchmarks/memory_scaling.py predict --run runs/minilm-32 --rows 200000 --runner ray
    python benchmarks/memory_scaling.py train --model "$MINILM" --rows 2000 20000
    python benchmarks/memory_scaling.py train --model "$MINILM" --rows 20000 200000 --max-train-samples 2000

Input files are the shared IMDB sample (train + validation, 3000 reviews) repeated to the asked number of
rows, as CSV. Each measurement is one `lora-sentiment` command in a child process; its resident memory is
sampled every 0.1 s over the whole process tree (workers included; with --runner ray the local Ray's
raylet, object store and actors, which the command starts) and the peak reported with the wall
time. Results go to stdout as a table and, with --output, as JSON."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb-sample"


def build_csv(rows: int, folder: Path) -> Path:
    path = folder / f"reviews-{rows}.csv"
    if not path.exists():
        base = pd.concat(
            [pd.read_parquet(SAMPLE / "train.parquet"), pd.read_parquet(SAMPLE / "validation.parquet")],
            ignore_index=True,
        )
        repeated = pd.concat([base] * (rows // len(base) + 1), ignore_index=True).head(rows)
        repeated["id"] = [f"r{i}" for i in range(rows)]
        repeated[["id", "text", "label"]].to_csv(path, index=False)
    return path


def anonymous_rss(pid: int) -> int:
    """RssAnon: memory the process allocated itself. RSS also counts pages of memory-mapped files it has
    read (the datasets Arrow cache), which the kernel can drop at any time, so it overstates their cost."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next((line for line in status if line.startswith("RssAnon:")), None)
    return int(line.split()[1]) * 1024 if line else 0  # an exiting process has no memory lines


def measure(command: list[str], datasets_cache: Path | None = None) -> dict:
    """Wall time and peak RSS and RssAnon (summed over the process tree; and the largest process) of a command."""
    began = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if datasets_cache is not None:
        env["HF_DATASETS_CACHE"] = str(datasets_cache)  # a cold cache: the CSV -> Arrow conversion is measured too
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak_tree = peak_single = peak_anon = 0
    while process.poll() is None:
        try:
            tree = [p for p in (process, *process.children(recursive=True)) if p.is_running()]
            sizes = [p.memory_info().rss for p in tree]
            anon = sum(anonymous_rss(p.pid) for p in tree)
        except (psutil.Error, OSError, StopIteration):
            sizes, anon = [], 0
        if sizes:
            peak_tree, peak_single = max(peak_tree, sum(sizes)), max(peak_single, max(sizes))
            peak_anon = max(peak_anon, anon)
        time.sleep(0.1)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read()[-3000:]}")
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_tree / 2**20,
        "peak_rss_largest_process_mb": peak_single / 2**20,
        "peak_rss_anon_mb": peak_anon / 2**20,
    }


def bench_predict(args: argparse.Namespace, folder: Path) -> list[dict]:
    results = []
    for rows in args.rows:
        source = build_csv(rows, folder)
        for workers in args.workers:
            suffix = "" if args.runner == "ray" else ".csv"  # Ray writes a folder of files
            out = folder / f"predictions-{rows}-{workers}-{args.runner}{suffix}"
            _remove(out)
            command = [
                sys.executable,
                "-m",
                "lora_sentiment",
                "predict",
                args.run,
                "--input",
                str(source),
                "--output",
                str(out),
                "--no-progress",
                "--workers",
                str(workers),
                "--runner",
                args.runner,
            ]
            result = {"command": "predict", "runner": args.runner, "rows": rows, "workers": workers}
            result.update(measure(command))
            result["rows_per_second"] = rows / result["seconds"]
            results.append(result)
            print(
                f"predict ({args.runner}) {rows:>7} rows, {workers} worker(s): {result['seconds']:7.1f} s, "
                f"{result['rows_per_second']:7.0f} rows/s, peak RSS {result['peak_rss_mb']:6.0f} MB "
                f"(largest process {result['peak_rss_largest_process_mb']:.0f} MB), "
                f"anonymous {result['peak_rss_anon_mb']:.0f} MB",
                flush=True,
            )
            _remove(out)
    return results


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def bench_train(args: argparse.Namespace, folder: Path) -> list[dict]:
    results = []
    for rows in args.rows:
        source = build_csv(rows, folder)
        out = folder / f"run-{rows}"
        command = [
            sys.executable,
            "-m",
            "lora_sentiment",
            "train",
            "--model",
            args.model,
            "--data",
            str(source),
            "--eval-data",
            str(SAMPLE / "validation.parquet"),
            "--max-eval-samples",
            "200",
            "--max-length",
            str(args.max_length),
            "--epochs",
            "1",
            "--output-dir",
            str(out),
            "--overwrite",
        ]
        if args.max_train_samples:
            command += ["--max-train-samples", str(args.max_train_samples)]
        cache = Path(tempfile.mkdtemp(prefix="datasets-cache-", dir=folder))
        result = {
            "command": "train",
            "rows": rows,
            "max_train_samples": args.max_train_samples,
            "csv_mb": source.stat().st_size / 2**20,
            **measure(command, cache),
        }
        shutil.rmtree(cache, ignore_errors=True)
        results.append(result)
        print(
            f"train {rows:>7} rows ({result['csv_mb']:.0f} MB CSV): {result['seconds']:7.1f} s, "
            f"peak RSS {result['peak_rss_mb']:6.0f} MB, anonymous {result['peak_rss_anon_mb']:6.0f} MB",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    predict = sub.add_parser("predict")
    predict.add_argument("--run", required=True)
    predict.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    predict.add_argument("--workers", type=int, nargs="+", default=[1])
    predict.add_argument("--runner", choices=["local", "ray"], default="local")
    train = sub.add_parser("train")
    train.add_argument("--model", required=True)
    train.add_argument("--rows", type=int, nargs="+", default=[2_000, 20_000])
    train.add_argument("--max-length", type=int, default=32)
    train.add_argument("--max-train-samples", type=int, help="train on a subsample (the whole file is still loaded)")
    for p in (predict, train):
        p.add_argument("--workdir", help="where input files are built [a temporary folder]")
        p.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args()
    folder = Path(args.workdir or tempfile.mkdtemp(prefix="lora-sentiment-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = bench_predict(args, folder) if args.what == "predict" else bench_train(args, folder)
    machine = {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}
    if args.output:
        Path(args.output).write_text(json.dumps({"machine": machine, "results": results}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
