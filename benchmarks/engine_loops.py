"""One timed pass of an engine over batches built once, shared by the int8 and engine benchmarks so that their
seconds come from the same loop: the model compiled or the session opened outside the clock, the batches'
logits written back in the texts' order."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

# One request over both cores, in f32: the int8 benchmarks compare quantized layers with the float model, so bf16
# must not be the difference.
OPENVINO_F32 = {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}

Batches = Iterable[tuple[Any, dict[str, np.ndarray]]]  # (the texts' rows, the model's inputs)


def openvino_pass(core: Any, model: Any, batches: Batches, shape: tuple[int, int], **settings: Any):
    """(logits [texts, classes], seconds) of `model` compiled with OPENVINO_F32 and `settings` over it."""
    request = core.compile_model(model, "CPU", {**OPENVINO_F32, **settings}).create_infer_request()
    out, started = np.zeros(shape, np.float32), time.perf_counter()
    for rows, feeds in batches:
        out[rows] = request.infer(feeds)[0]
    return out, time.perf_counter() - started


def onnxruntime_session(path: Any, threads: int = 2) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnxruntime_pass(session: Any, batches: Batches, shape: tuple[int, int]):
    """(logits, seconds) of an open session; inputs the graph does not take (a fused graph may drop one) are left
    out."""
    wanted = {i.name for i in session.get_inputs()}
    out, started = np.zeros(shape, np.float32), time.perf_counter()
    for rows, feeds in batches:
        out[rows] = session.run(["logits"], {k: v for k, v in feeds.items() if k in wanted})[0]
    return out, time.perf_counter() - started
