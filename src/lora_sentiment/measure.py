"""What a command costs, measured the same way everywhere: peak memory, start-up, seconds per stage. Cheap to
import (no torch), so a child process can report on itself."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory [this one's]. Not getrusage's ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a fresh child started by a big parent reports the parent's peak. VmHWM starts
    anew."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux, bytes on macOS


def seconds_since_process_start() -> float | None:
    """The interpreter's own start-up and imports so far, from the kernel's record of when this process began."""
    import os

    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None  # not Linux


class Stages:
    """Wall seconds per named stage, in the order the stages were first entered; a stage may be entered again."""

    def __init__(self, *names: str):
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def seconds_line(seconds: dict[str, float | None]) -> str:
    """The `Seconds: stage s, ...` line the CLI prints on stderr (benchmarks parse it)."""
    return "Seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items() if v is not None)
