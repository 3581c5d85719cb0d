"""training/memory.py: during training steps freed blocks stay in the heap for the next step (no mmap, no trimming
by glibc); they are handed back (malloc_trim) only past a budget set from the first step's peak; evaluations run on
glibc's settings, and those come back when training ends, finished or failed."""

import ctypes
import sys
from types import SimpleNamespace

import pytest
from transformers import TrainerCallback

from lora_sentiment.config import TrainConfig
from lora_sentiment.training import memory, recipe

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc controls")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]  # fmt: skip


def mapped_bytes() -> int:
    """Bytes glibc holds in blocks of their own mapping (mallinfo2's hblkhd)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblkhd


@linux
@pytest.mark.skipif(sys.platform.startswith("linux") and not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"),
                    reason="mallinfo2 is glibc 2.33 and later")  # fmt: skip
def test_while_kept_a_large_block_comes_from_the_heap_and_after_release_from_its_own_mapping():
    allocator = memory.Allocator.for_this_process()
    assert allocator is not None
    size = 64 * 2**20  # over glibc's largest mmap threshold (32 MB): mapped by default
    try:
        allocator.keep_freed()
        before = mapped_bytes()
        block = ctypes.create_string_buffer(size)
        assert mapped_bytes() - before < size
        del block
    finally:
        allocator.restore()
    before = mapped_bytes()
    block = ctypes.create_string_buffer(size)
    assert mapped_bytes() - before >= size
    del block


@linux
def test_resident_bytes_reads_this_process():
    assert 10 * 2**20 < memory.resident_bytes() < 64 * 2**30


class FakeAllocator:
    def __init__(self):
        self.calls = []

    def keep_freed(self):
        self.calls.append("keep")

    def restore(self):
        self.calls.append("restore")

    def trim(self, pad):
        self.calls.append("trim")


def test_the_callback_trims_only_past_the_budget_set_by_the_first_step():
    allocator, resident = FakeAllocator(), iter([1100, 1250, 1190, 900])
    callback = memory.KeepFreedMemory(allocator, headroom=1.2, floor=500, resident=lambda: next(resident),
                                        peak=lambda: 1000)  # fmt: skip
    steps = SimpleNamespace(should_evaluate=False)
    callback.on_train_begin(None, None, steps)
    assert allocator.calls == ["keep"]
    for _ in range(4):  # resident 1100, 1250 (trimmed), 1190, 900 against a budget of 1200
        callback.on_step_begin(None, None, steps)
        callback.on_step_end(None, None, steps)
    assert callback.budget == 1200 and callback.trims == 1
    callback.release()
    assert allocator.calls == ["keep", "trim", "restore"]


def test_a_small_first_peak_gets_the_floor():
    callback = memory.KeepFreedMemory(FakeAllocator(), headroom=1.2, floor=2000, resident=lambda: 1900,
                                        peak=lambda: 1000)  # fmt: skip
    callback.on_step_end(None, None, SimpleNamespace(should_evaluate=False))
    assert callback.budget == 2000 and callback.trims == 0


def test_evaluations_run_on_glibcs_settings_and_the_next_step_keeps_again():
    allocator = FakeAllocator()
    callback = memory.KeepFreedMemory(allocator, resident=lambda: 0, peak=lambda: 1000)
    callback.on_train_begin(None, None, SimpleNamespace(should_evaluate=False))
    callback.on_step_end(None, None, SimpleNamespace(should_evaluate=True))  # evaluation every few steps
    callback.on_step_begin(None, None, SimpleNamespace(should_evaluate=False))
    callback.on_step_end(None, None, SimpleNamespace(should_evaluate=False))
    callback.on_epoch_end(None, None, SimpleNamespace(should_evaluate=True))  # evaluation every epoch
    assert allocator.calls == ["keep", "restore", "keep", "restore"]
    callback.on_step_begin(None, None, SimpleNamespace(should_evaluate=False))
    assert allocator.calls[-1] == "keep" and callback.trims == 0


def test_without_glibc_no_callback(monkeypatch):
    monkeypatch.setattr(memory.Allocator, "for_this_process", classmethod(lambda cls: None))
    assert memory.memory_callbacks() == []
    monkeypatch.setattr(memory.Allocator, "for_this_process", classmethod(lambda cls: FakeAllocator()))
    (callback,) = memory.memory_callbacks()
    assert isinstance(callback, memory.KeepFreedMemory)


class Fails(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        raise RuntimeError("stopped in the middle")


def test_a_training_that_fails_puts_the_allocator_back(tmp_path, tiny_distilbert, small_csv, monkeypatch):
    allocator = FakeAllocator()
    monkeypatch.setattr(recipe, "memory_callbacks", lambda: [memory.KeepFreedMemory(allocator)])
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "run"),
                         max_length=32, epochs=1, precision="fp32", baseline="none")  # fmt: skip
    with pytest.raises(RuntimeError, match="stopped in the middle"):
        recipe.train(config, log=lambda _: None, callbacks=[Fails()])
    assert allocator.calls[0] == "keep" and allocator.calls[-1] == "restore"


def test_in_a_real_training_each_evaluation_runs_on_glibcs_settings(tmp_path, tiny_distilbert, small_csv, monkeypatch):
    allocator = FakeAllocator()
    monkeypatch.setattr(recipe, "memory_callbacks", lambda: [memory.KeepFreedMemory(allocator)])
    config = TrainConfig(model=tiny_distilbert, data=str(small_csv), output_dir=str(tmp_path / "run"),
                         max_length=32, epochs=2, batch_size=16, precision="fp32", baseline="none")  # fmt: skip
    recipe.train(config, log=lambda _: None)
    calls = [call for call in allocator.calls if call != "trim"]
    # 5 steps an epoch (76 texts); an evaluation after each epoch; glibc's settings for good at the end
    assert calls == ["keep", "restore", "keep", "restore", "restore"]
