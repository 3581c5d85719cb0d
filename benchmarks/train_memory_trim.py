"""Peak memory of the default `train` at its largest shape (MiniLM, 512 tokens, batch 16) over a whole epoch of the
shared sample, with and without returning freed memory every N steps (training/memory.py), each in a fresh
process, one after the other; peak RSS is the process's VmHWM.

    python benchmarks/train_memory_trim.py --model "$MINILM" --output benchmarks/results/train-memory-trim.json
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/train_memory_trim.py ...   # fp32, as without bf16 units
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb-sample"
CHILD = """
import sys
from lora_sentiment.cli import main
from lora_sentiment.measure import peak_rss_mb
import lora_sentiment.training.memory as memory
if sys.argv[1] == "off":
    memory.malloc_trim = lambda: None
else:
    memory.TRIM_EVERY = int(sys.argv[1].removeprefix("every-"))
code = main(sys.argv[2:])
print("PEAK_RSS_MB", peak_rss_mb(), file=sys.stderr)
sys.exit(code)
"""


def measure(trim: str, model: str, args: argparse.Namespace, folder: Path) -> dict:
    command = ["train", "--model", model, "--data", str(SAMPLE / "train.parquet"), "--eval-data",
               str(SAMPLE / "validation.parquet"), "--max-length", str(args.max_length), "--batch-size", "16",
               "--epochs", "1", "--max-train-samples", str(args.train_samples), "--max-eval-samples", "200",
               "--baseline", "none", "--output-dir", str(folder / trim)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, trim, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    peak = float(done.stderr.rsplit("PEAK_RSS_MB", 1)[1].split()[0])
    return {"trim": trim, "seconds": round(seconds, 1), "peak_rss_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--every", nargs="+", default=["every-1"], help="trim after every N steps: every-N ...")
    parser.add_argument("--output")
    args = parser.parse_args()
    from lora_sentiment.modeling.cpu import this_cpu

    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(trim, args.model, args, Path(tmp)) for trim in ("off", *args.every)]
    for row in rows:
        print(f"malloc_trim {row['trim']:>8}: peak RSS {row['peak_rss_mb']:,} MB, {row['seconds']} s")
    result = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().describe(), "max_length": args.max_length,
              "train_samples": args.train_samples, "results": rows}  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
