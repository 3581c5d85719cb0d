"""Benchmarks a user runs on their own machine after `pip install` (`lora-sentiment bench`, `bench-engines`,
`bench-serve`): one harness (harness.py: fresh processes, quiet libraries, machine facts, the matmul peak), the
tutorial's recipe written once (tutorial.py). Only these commands import this package."""

from .._face import lazy

__getattr__, __all__ = lazy(__name__, {
    "run_bench": "speed", "format_report": "speed", "forward_flops": "speed",
    "run_engine_bench": "engines", "format_engine_report": "engines",
    "run_load": "serve_load", "ServerProcess": "serve_load", "compare_batching": "serve_load",
    "compare_models": "serve_load",
})  # fmt: skip
