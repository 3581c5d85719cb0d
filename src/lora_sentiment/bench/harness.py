"""The benchmark harness, shared by `bench`, `bench-engines` and `bench-serve`: each measured phase in a fresh
process (its peak RSS its own), libraries quiet, the machine described beside every number, the matmul peak
measured in the same run, and whole commands timed as a user runs them."""

from __future__ import annotations

import multiprocessing
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..errors import UserError
from ..modeling.cpu import this_cpu
from ..modeling.device import TORCH_DTYPES, cpu_has_fast_bf16, cpu_info, synchronize

# A child that runs the CLI and reports its own peak RSS, so start-up and loading are counted.
CLI_CHILD = (
    "import sys; from lora_sentiment.cli import main; from lora_sentiment.measure import peak_rss_mb; "
    "code = main(sys.argv[1:]); print('PEAK_RSS_MB', peak_rss_mb(), file=sys.stderr); sys.exit(code)"
)


def quiet() -> None:
    """No progress bars or library chatter in a measured phase."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")


def in_fresh_process(function: Callable[..., dict], *args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def whole_command(argv: list[str]) -> dict[str, Any]:
    """Wall seconds and peak RSS of a fresh interpreter running `argv` (which prints PEAK_RSS_MB on stderr, as
    CLI_CHILD does); the CLI's stage seconds if it printed them."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise UserError(f"{' '.join(argv[:3])}... failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = {"seconds": seconds}
    result["peak_rss_mb"] = float(re.findall(r"PEAK_RSS_MB ([\d.]+)", done.stderr)[-1])
    stages = re.findall(r"Seconds: (.*)", done.stderr)
    if stages:
        result["stages"] = {k: float(v) for k, v in (part.rsplit(" ", 1) for part in stages[-1].split(", "))}
    return result


def peak_matmul_flops(device: str, dtype_name: str, seconds: float = 2.0) -> float:
    """The best FLOP/s of large square matmuls in this dtype, over a few sizes."""
    dtype = TORCH_DTYPES[dtype_name]
    best = 0.0
    sizes = (1024, 2048, 3072) if device == "cpu" else (4096, 8192)
    for n in sizes:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        for _ in range(2):
            a @ b
        synchronize()
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / len(sizes):
            a @ b
            reps += 1
            synchronize() if reps % 8 == 0 else None
        synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - start))
    return best


def phase_peak(device: str) -> dict[str, Any]:
    quiet()
    result = {"fp32": peak_matmul_flops(device, "fp32")}
    if device.startswith("cuda") or cpu_has_fast_bf16():
        result["bf16"] = peak_matmul_flops(device, "bf16")
    return result


def phase_startup() -> dict[str, Any]:
    """Seconds until the CLI answers --help, and until `import lora_sentiment` returns."""
    timings = {}
    for name, argv in (
        ("cli_help_s", ["-m", "lora_sentiment", "--help"]),
        ("import_s", ["-c", "import lora_sentiment"]),
    ):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], check=True, capture_output=True)
        timings[name] = time.perf_counter() - start
    return timings


def machine_description(device: str) -> dict[str, Any]:
    flags = cpu_info()["flags"]
    info: dict[str, Any] = {
        "device": device,
        "cpu": cpu_info()["model"] or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "bf16_cpu_units": cpu_has_fast_bf16(),
        "cpu_class": this_cpu().name,
        "cpu_class_found": this_cpu().found,
        "date": time.strftime("%Y-%m-%d"),
        "cpu_flags": sorted(
            f for f in flags if f.startswith(("avx512", "amx", "avx2", "avx_vnni", "fma", "asimddp", "bf16", "i8mm"))
        ),  # fmt: skip
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
