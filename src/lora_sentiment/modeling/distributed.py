"""Several processes, one run: the few facts training needs when launched by torchrun or accelerate launch.

HF Trainer does the data-parallel work (DDP, sharded batches, gathered eval predictions); this module only
lets the rest of the recipe write, print and wait as one run: rank 0 writes and prints, the others wait."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def init(cpu: bool) -> Any:
    """Join the process group before any work (gloo on CPU, NCCL on GPUs), so ranks can wait for each other
    while data is prepared; the Trainer later reuses the same accelerate state."""
    if world_size() == 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=cpu)


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 fills the datasets cache first; the others then read it instead of writing the same files."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()
