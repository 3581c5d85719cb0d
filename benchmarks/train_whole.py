"""`train` as a whole command (start-up, data, baseline, model, training steps, evaluation, report, save), the
tutorial's recipe against this project's defaults, each in a fresh interpreter, one after the other in one run.

    python benchmarks/train_whole.py --model "$MINILM" --data ../shared/data/imdb-sample \
        --output benchmarks/results/train-whole-cpu-2026-11-27.json
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_memory_trim import TRIM_EVERY_STEP

# The tutorial's recipe through the same pipeline (bench.tutorial.tutorial_settings: fp32, batch 4, r=4 on the query
# projection, tail truncation, random batches), so the two differ only in the recipe; with glibc's allocator and the
# full last layer, as the tutorial's notebook has them (bench.tutorial.process_like_tutorial).
TUTORIAL = """
import json, sys
from lora_sentiment import TrainConfig, train
from lora_sentiment.bench.tutorial import process_like_tutorial, tutorial_settings
process_like_tutorial()
from lora_sentiment.measure import peak_rss_mb, seconds_line
settings = json.loads(sys.argv[1])
result = train(TrainConfig(**tutorial_settings(settings, "bert")), log=lambda _: None)
print(seconds_line(result.seconds), file=sys.stderr)
print("PEAK_RSS_MB", peak_rss_mb(), file=sys.stderr)
"""
OURS = (
    "import sys; from lora_sentiment.cli import main; from lora_sentiment.measure import peak_rss_mb; "
    "code = main(sys.argv[1:]); print('PEAK_RSS_MB', peak_rss_mb(), file=sys.stderr); sys.exit(code)"
)
# The default until 2026-12-06: glibc's allocator and malloc_trim(0) after every step (training/memory.py says why
# it changed), for the before-and-after in one run.
TRIM_EVERY_STEP_CHILD = (
    TRIM_EVERY_STEP
    + "recipe.memory_callbacks = lambda: [TrimEveryStep(memory.Allocator.for_this_process())]\n"
    + OURS.replace("; ", "\n")
)


def measure(argv: list[str], out: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    stages = re.findall(r"Seconds: (.*)", done.stderr)[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "stages": {k: round(float(v), 2) for k, v in (p.rsplit(" ", 1) for p in stages.split(", "))},
        "peak_rss_mb": round(float(re.findall(r"PEAK_RSS_MB ([\d.]+)", done.stderr)[-1])),
        "accuracy": round(metrics["final"]["accuracy"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, type=Path, help="folder with train.parquet, validation.parquet")
    parser.add_argument("--train-samples", type=int, default=480)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--ours-with",
        action="append",
        default=[],
        metavar="FLAGS",
        help="also run ours with these extra flags (e.g. '--eval-batch-size 64'); repeatable",
    )
    parser.add_argument("--skip-trim-every-step", action="store_true", help="leave out the old trim policy's run")
    parser.add_argument("--output")
    args = parser.parse_args()
    settings = dict(
        model=args.model, data=str(args.data / "train.parquet"), eval_data=str(args.data / "validation.parquet"),
        max_train_samples=args.train_samples, max_eval_samples=args.eval_samples, max_length=args.max_length,
        epochs=1.0,
    )  # fmt: skip
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    from lora_sentiment.modeling.cpu import this_cpu

    results = {"settings": settings, "cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tutorial_settings = json.dumps(settings | {"output_dir": str(scratch / "0")})
        runs = {"the tutorial's recipe": ["-c", TUTORIAL, tutorial_settings], "ours (default)": ["-c", OURS]}
        if not args.skip_trim_every_step:
            old = "ours, trimming memory after every step (the default until 2026-12-06)"
            runs[old] = ["-c", TRIM_EVERY_STEP_CHILD]
        for extra in args.ours_with:
            runs[f"ours, {extra}"] = ["-c", OURS, *shlex.split(extra)]
        for number, (name, argv) in enumerate(runs.items()):
            out = scratch / str(number)
            if number:  # ours: the train command with the benchmark's flags, then the variant's own
                argv = [*argv[:2], "train", *flags, *argv[2:], f"--output-dir={out}"]
            results[name] = measure(argv, out)
            print(name, results[name], flush=True)
    tutorial = results["the tutorial's recipe"]["seconds"]
    for name in runs:
        results[name]["vs_tutorial"] = round(tutorial / results[name]["seconds"], 2)
    print(json.dumps(results, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
