"""One result line: printed, and appended to the results file when one is given (the benchmarks' JSON lines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(row: dict[str, Any], output: Path | None) -> None:
    line = json.dumps(row)
    print(line, flush=True)
    if output:
        with output.open("a") as out:
            out.write(line + "\n")
