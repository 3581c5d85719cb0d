"""Peak memory of this process, measured the same way by every benchmark (and cheap to import: no torch)."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from the parent
    across fork and exec, so a fresh child started by a big parent reports the parent's peak. VmHWM starts anew."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux, bytes on macOS
