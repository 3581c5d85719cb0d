"""Compiling a run quietly: `predict` writes its answers to stdout and its notes to stderr, and a compile done on
its way (the f32 model, the int8 check's model) must add to neither. And tracing a model for `export` without the
tracer's notes on transformers' code."""

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


@contextmanager
def quiet_tracer() -> Iterator[None]:
    """Tracing without torch's TracerWarnings, and only those: transformers' mask code turns a tensor into a Python
    bool (is there padding? is the mask causal?), which the tracer reports as a risk. The trace is taken on a
    padded batch (`trace_inputs`), so the masked path is the one recorded, and the exports' agreement with torch at
    every length is what the tests check; the notes tell an `export` user nothing they can act on. Likewise the
    exporter's note on advanced indexing (wrong "if indices include negative values"): in eager attention's mask
    the indices are aranges of batch rows and positions. And transformers' notes on the attributes the tracer reads
    (every one of the model's: "`loss_type=None` ... Using the default loss: `ForCausalLMLoss`" for a classifier,
    a FutureWarning on `is_gradient_checkpointing`), which reached Python callers, whose verbosity the CLI's is not."""
    import torch

    from ..modeling.quiet import quiet_loading

    with quiet_loading(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing")
        yield
