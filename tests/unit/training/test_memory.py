"""training/memory.py: freed memory is handed back after each training step and evaluation (glibc's
malloc_trim), where the C library has it."""

import sys

import pytest

from lora_sentiment.training import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_malloc_trim_is_found_and_returns_memory():
    trim = memory.malloc_trim()
    assert trim is not None
    blocks = [bytearray(100_000 + i) for i in range(200)]  # on the heap (under glibc's 128 kB mmap threshold)
    del blocks
    assert trim(0) == 1  # 1: memory was returned to the system


def test_the_callback_trims_every_few_steps_and_after_evaluations():
    from types import SimpleNamespace

    calls = []
    callback = memory.ReturnFreedMemory(calls.append, every=3)
    for step in range(1, 7):
        callback.on_step_end(None, SimpleNamespace(global_step=step), None)
    assert calls == [0, 0]  # after steps 3 and 6
    callback.on_evaluate(None, None, None, metrics={})
    assert calls == [0, 0, 0]


def test_without_malloc_trim_no_callback(monkeypatch):
    monkeypatch.setattr(memory, "malloc_trim", lambda: None)
    assert memory.memory_callbacks() == []
    monkeypatch.setattr(memory, "malloc_trim", lambda: len)
    (callback,) = memory.memory_callbacks()
    assert isinstance(callback, memory.ReturnFreedMemory)
