"""Which texts a run has seen: 8-byte hashes of its training and evaluation texts, normalised as `audit` compares
texts (HTML, case, punctuation and spacing set aside), kept in the run as seen_texts.safetensors (8 bytes a text:
350 KB for GoEmotions' 43,410 comments). `evaluate` counts the texts it is given that the run was trained on, or
chose its epoch, calibration and thresholds on, and says so: their scores flatter the run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.duplicates import text_hashes

__all__ = ["SEEN_FILE", "seen_counts", "seen_lines", "text_hashes", "write_seen"]

SEEN_FILE = "seen_texts.safetensors"


def write_seen(run_dir: Path, train_hashes: np.ndarray, evaluation_hashes: np.ndarray) -> None:
    """The run's record: its training and evaluation texts' text_hashes."""
    from safetensors.numpy import save_file

    save_file({"train": train_hashes, "evaluation": evaluation_hashes}, str(run_dir / SEEN_FILE))


def seen_counts(run_dir: str | Path | None, texts: Sequence[str]) -> dict[str, int] | None:
    """How many of `texts` the run at `run_dir` (or an export of it) trained on and evaluated on; None where it
    keeps no record (a run, or an export of one, from before 2026-12-06)."""
    path = Path(run_dir) / SEEN_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    from safetensors.numpy import load_file

    try:
        seen = load_file(str(path))
        trained, evaluated = seen["train"], seen["evaluation"]
    except Exception:  # noqa: BLE001 - a damaged record is no record: the scores do not depend on it
        return None
    hashes = text_hashes(texts)
    return {"texts": len(hashes), "training": int(np.isin(hashes, trained).sum()),
            "evaluation": int(np.isin(hashes, evaluated).sum())}  # fmt: skip


def seen_lines(seen: dict[str, Any] | None, run: str = "the run") -> list[str]:
    """A warning per kind of text the run has seen among those evaluated (none where it saw none)."""
    if not seen:
        return []
    lines, n = [], seen["texts"]
    if seen["training"]:
        lines.append(f"Warning: {seen['training']} of these {n} texts are {run}'s training texts: their scores say how "
                     "well it learned them, not how it does on unseen texts.")  # fmt: skip
    if seen["evaluation"]:
        lines.append(f"Note: {seen['evaluation']} of these {n} texts are {run}'s evaluation texts, on which training "
                     "chose its kept epoch and calibration (and a tag run its thresholds): their scores are somewhat "
                     "flattered.")  # fmt: skip
    return lines
