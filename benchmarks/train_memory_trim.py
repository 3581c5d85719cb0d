"""Peak memory and time of the default `train` at its largest shape (MiniLM, 512 tokens, batch 16) over a whole
epoch of the shared sample, per memory policy (training/memory.py), each in a fresh process, one after the other;
peak RSS is the process's VmHWM. Policies: `default` (freed blocks kept, trimmed past a budget), `glibc` (glibc's
settings, nothing trimmed), `trim-every-step` (glibc's settings and malloc_trim(0) after every step and
evaluation: the default from 2026-12-02 to 2026-12-06); `default@1.1` sets the default's headroom.

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
# The default from 2026-12-02 to 2026-12-06 as a callback, for the children here and in train_whole.py: glibc's
# settings and malloc_trim(0) after every step and evaluation.
TRIM_EVERY_STEP = """
from transformers import TrainerCallback
from lora_sentiment.training import memory, recipe
class TrimEveryStep(TrainerCallback):
    def __init__(self, allocator):
        self.allocator, self.trims = allocator, 0
    def on_step_end(self, args, state, control, **kwargs):
        self.allocator.trim(0)
        self.trims += 1
    on_evaluate = on_step_end
    def release(self):
        pass
"""
CHILD = (
    TRIM_EVERY_STEP
    + """
import sys
from lora_sentiment.cli import main
from lora_sentiment.measure import peak_rss_mb
kept = []
def callbacks():
    allocator, policy = memory.Allocator.for_this_process(), sys.argv[1].split("@")
    headroom = float(policy[1]) if len(policy) > 1 else memory.HEADROOM
    kept[:] = [memory.KeepFreedMemory(allocator, headroom)] if policy[0] == "default" else \\
        [TrimEveryStep(allocator)] if policy[0] == "trim-every-step" else []
    return kept
recipe.memory_callbacks = callbacks
code = main(sys.argv[2:])
budget = [round(k.budget / 2**20) for k in kept if getattr(k, "budget", None)]
print("PEAK_RSS_MB", peak_rss_mb(), "TRIMS", sum(k.trims for k in kept), "BUDGET_MB", *budget[:1] or [0],
      file=sys.stderr)
sys.exit(code)
"""
)


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
    peak, _, trims, _, budget = done.stderr.rsplit("PEAK_RSS_MB", 1)[1].split()[:5]
    return {"policy": trim, "seconds": round(seconds, 1), "peak_rss_mb": round(float(peak)), "trims": int(trims),
            "budget_mb": int(budget) or None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--policies", nargs="+", default=["default", "trim-every-step", "glibc"])
    parser.add_argument("--output")
    args = parser.parse_args()
    from lora_sentiment.modeling.cpu import this_cpu

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for policy in args.policies:
            rows.append(measure(policy, args.model, args, Path(tmp)))
            row = rows[-1]
            print(f"{policy:>16}: peak RSS {row['peak_rss_mb']:,} MB, {row['seconds']} s, {row['trims']} trims, "
                  f"budget {row['budget_mb']} MB", flush=True)  # fmt: skip
    result = {"date": time.strftime("%Y-%m-%d"), "cpu_class": this_cpu().describe(), "max_length": args.max_length,
              "train_samples": args.train_samples, "results": rows}  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
