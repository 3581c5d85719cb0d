"""Compiling a run quietly: `predict` writes its answers to stdout and its notes to stderr, and a compile done on
its way (the f32 model, the int8 check's model) must add to neither."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_compile() -> Iterator[None]:
    """A compile without the ONNX tracer's notes on the graph (about the export, not the user's data) or NNCF's
    progress bars and INFO lines (on stdout, where `predict` writes its answers)."""
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        nncf_log.setLevel(level)
