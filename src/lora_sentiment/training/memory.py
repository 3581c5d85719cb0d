"""Training's memory: freed blocks kept for the next step while the process stays within a budget, handed back to
the system past it.

Every step frees and allocates about a gigabyte of activations. glibc's defaults hand large blocks straight back
(anything over its mmap threshold, up to 32 MB, is its own mapping), so the next step faults the same pages in
again. From 2026-12-02 to 2026-12-06 `train` also called `malloc_trim(0)` after every step, because length-grouped
batches (a different length each) fragmented the heap until a 512-token run peaked at 4 GB; the peak stayed under
3 GB, but each step re-faulted 135-325 thousand pages: 20-30 % of a MiniLM step on 2 cores
(docs/benchmarks/memory.md). So during training steps every block comes from the heap and glibc trims nothing on
its own; we trim (all arenas) only when the resident set passes a budget: HEADROOM times the peak the first step
reached (the longest batch comes first: transformers' LengthGroupedSampler), and at least FLOOR. Evaluations,
whose batches are 4x a training batch, run on glibc's settings, which are put back for good when training ends
(`release`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from ..measure import peak_rss_mb

# mallopt's parameters (malloc.h) and glibc's defaults for them.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
NEVER = 2**31 - 1  # mallopt takes an int

# The budget: HEADROOM times the first step's peak, and never under FLOOR. A trim costs the next step what every
# step paid before (all free pages faulted in again), so it must be rare: at 1.2x alone, MiniLM at 256 tokens
# passed it on 7-9 steps of 30 and kept only glibc's speed. The floor keeps a small model's heap up to 2.5 GiB, under
# the 3 GB ceiling with room for the growth inside one step (50-340 MB measured); at 512 tokens in fp32
# 1.2x is above it (docs/benchmarks/memory.md, 2026-12-06).
HEADROOM, FLOOR = 1.2, 2.5 * 2**30


@dataclass(frozen=True)
class Allocator:
    """glibc's malloc controls; `for_this_process()` gives None where the C library is another (macOS, Windows,
    musl)."""

    trim: Callable[[int], int]
    mallopt: Callable[[int, int], int]

    @classmethod
    def for_this_process(cls) -> Allocator | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            trim, mallopt = libc.malloc_trim, libc.mallopt
        except (OSError, AttributeError):
            return None
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        return cls(trim, mallopt)

    def keep_freed(self) -> None:
        """Every block from the heap (no mmap) and no trimming of the heap's top by glibc."""
        self.mallopt(M_MMAP_MAX, 0)
        self.mallopt(M_TRIM_THRESHOLD, NEVER)

    def restore(self) -> None:
        """glibc's default settings (fixed ones: its sliding mmap threshold does not come back once set)."""
        self.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        self.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        self.trim(0)


def resident_bytes() -> int:
    """This process's resident set now (statm's second field, in pages): one small read, cheap enough every step."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class KeepFreedMemory(TrainerCallback):
    """Keeps freed blocks for reuse during training steps; trims when the resident set passes `headroom` times the
    peak of the first step or `floor` bytes, whichever is more, checked after every step."""

    def __init__(self, allocator: Allocator, headroom: float = HEADROOM, floor: float = FLOOR,
                 resident: Callable[[], int] = resident_bytes,
                 peak: Callable[[], float] = lambda: peak_rss_mb() * 2**20):  # fmt: skip
        self.allocator, self.headroom, self.floor, self.resident, self.peak = allocator, headroom, floor, resident, peak
        self.budget: float | None = None
        self.trims, self.paused = 0, False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.allocator.keep_freed()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.paused:
            self.allocator.keep_freed()
            self.paused = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.budget is None:
            self.budget = max(self.headroom * self.peak(), self.floor)
        if not self._before_evaluation(control) and self.resident() > self.budget:
            self.allocator.trim(0)
            self.trims += 1

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._before_evaluation(control)

    def _before_evaluation(self, control: Any) -> bool:
        """Evaluations run on glibc's settings: their batches are 4x a training batch (64 against 16), and kept in
        the heap they fragmented it (a whole 512-token fp32 epoch peaked at 3.4 GB instead of 2.7). The Trainer's
        flow callback, which runs before ours, has just said whether one comes next."""
        if control.should_evaluate and not self.paused:
            self.allocator.restore()
            self.paused = True
        return self.paused

    def release(self) -> None:
        """glibc's settings back and the kept blocks returned: when training ends, finished or not (the recipe
        calls it in a `finally`, so a failed run or a pruned trial does not leave the process keeping memory)."""
        self.allocator.restore()


def memory_callbacks() -> list[TrainerCallback]:
    allocator = Allocator.for_this_process()
    return [KeepFreedMemory(allocator)] if allocator is not None else []
