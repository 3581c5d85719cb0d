"""Memory freed by training steps handed back to the system.

Length-grouped batches have a different length each, so every step frees tensors of sizes the next step does not
ask for; glibc keeps those pages, and a default MiniLM run's peak RSS grew with the number of steps (2.3 GB
after 20 steps at 512 tokens, 3.5-4.0 GB after 125; docs/benchmarks/memory.md). `malloc_trim(0)` returns the
free pages of every arena (the blocks stay usable); its cost in time was inside the machine's noise, where forcing
tensors to mmap instead (MALLOC_MMAP_THRESHOLD_) cost 10-47 %."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library is another (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


# Steps. Every step: 2.4 GB peak instead of 4.0 (MiniLM, 512 tokens, batch 16, 125 steps, AMX); every 10 steps
# left 3.05 GB, over the 3 GB target (docs/benchmarks/memory.md).
TRIM_EVERY = 1


class ReturnFreedMemory(TrainerCallback):
    """malloc_trim(0) after every `every` training steps and after each evaluation."""

    def __init__(self, trim: Callable[[int], int], every: int = TRIM_EVERY):
        self.trim, self.every = trim, every

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0:
            self.trim(0)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trim(0)


def memory_callbacks() -> list[TrainerCallback]:
    trim = malloc_trim()
    return [ReturnFreedMemory(trim, TRIM_EVERY)] if trim is not None else []
