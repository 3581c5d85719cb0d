"""Where and in what precision the model runs: device, dtype, and the hardware facts that decide them."""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from ..config import Precision
from ..errors import UserError
from .cpu import cpu_flags, this_cpu
from .distributed import local_rank

LOG = logging.getLogger("lora_sentiment")
TORCH_DTYPES: dict[Precision, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())  # one GPU per process under torchrun / accelerate launch
    return torch.device("cpu")


def cpu_info() -> dict[str, object]:
    """The CPU's model name and flags (read once; empty where the system tells none)."""
    model, flags = cpu_flags()
    return {"model": model, "flags": list(flags)}


def cpu_has_fast_bf16() -> bool:
    """bf16 units (AMX, AVX512-BF16, ARM bf16), as torch may use them here: bf16 then beats fp32."""
    return this_cpu().bf16_units


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """auto -> bf16 on GPUs that have it (else fp16) and on CPUs with bf16 units; fp32 elsewhere."""
    if requested == "fp16" and device.type != "cuda":
        instead = "bf16 or fp32" if device.type != "cpu" or cpu_has_fast_bf16() else "fp32 (or auto)"
        raise UserError(f"--precision fp16 needs a CUDA GPU; use --precision {instead} on this machine")
    if requested == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        _slow_bf16_note(this_cpu().name)
    if requested != "auto":
        return requested  # type: ignore[return-value]
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


@functools.cache  # once a process: train and predict resolve the precision more than once
def _slow_bf16_note(cpu_class: str) -> None:
    # Without bf16 units bf16 runs on slow paths: MiniLM's forward took 5x fp32's time on avx2 (a 2048² matmul
    # 380x) and a matmul 5x on avx512-vnni (docs/benchmarks/cpu-classes.md): a command copied from an AMX machine
    # with `--precision bf16` would train for five times as long.
    LOG.warning(f"note: --precision bf16 on this CPU ({cpu_class}: no bf16 units) runs several times slower than "
                "fp32; --precision auto chooses fp32 here")  # fmt: skip


# Texts per forward pass without gradients on a CPU (evaluation, prediction with torch). MiniLM, 256 tokens,
# reviews sorted by length, 2026-12-06 (the amx host in bf16, and capped to stand in for avx512-vnni in fp32):
# evaluation in training took 11-12 % less time at 16 than at 64, prediction 2 % (fp32; 14-17 % in two probes) and
# 26 % (bf16; a tie in a probe) less than at 32. Larger batches' activations leave the caches, and glibc maps and
# unmaps their blocks on every batch (docs/benchmarks/cpu-classes.md, "Evaluation and prediction batches on a CPU").
CPU_BATCH = 16
GPU_EVAL_BATCH = 64


def eval_batch_size(requested: int | str, device: torch.device) -> int:
    """--eval-batch-size: auto -> CPU_BATCH on a CPU, GPU_EVAL_BATCH on a GPU."""
    if requested != "auto":
        return int(requested)
    return GPU_EVAL_BATCH if device.type == "cuda" else CPU_BATCH


def configure_attention_backends(device: torch.device) -> None:
    """On GPUs, keep SDPA off its cuDNN backend, which plans each new sequence length anew: with length-
    grouped batches every step brings a new length, and on an H100 that made our training slower than the
    tutorial's fixed-length batches. The flash and memory-efficient kernels need no per-shape planning."""
    if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def pad_multiple(device: torch.device) -> int | None:
    """Batch lengths rounded up to a multiple of 16 on GPUs keep SDPA on its fused kernels when a batch needs
    a padding mask; on CPUs the extra padding would only cost compute."""
    return 16 if device.type == "cuda" else None


def encoder_dims(model_config: Any) -> tuple[int, int, int]:
    """(layers, hidden size, feed-forward size) for BERT-style and DistilBERT-style configs."""
    get = lambda *names: next(getattr(model_config, n) for n in names if getattr(model_config, n, None))  # noqa: E731
    return get("num_hidden_layers", "n_layers"), get("hidden_size", "dim"), get("intermediate_size", "hidden_dim")


def gpu_inference_batch(model_config: Any, max_length: int, device: torch.device) -> int:
    """Sequences per forward pass on a GPU, from its free memory: a quarter of it over one layer's live
    activations per sequence (Q, K, V, attention output, residual, feed-forward; 2 bytes each) with a 4x
    margin for the allocator, as a multiple of 64 between 64 and 1024. A small encoder leaves a GPU idle
    between launches at the CPU's batch sizes; beyond ~1024 sequences there is nothing left to gain."""
    _, hidden, ffn = encoder_dims(model_config)
    free, _ = torch.cuda.mem_get_info(device)
    per_sequence = max_length * (5 * hidden + ffn) * 2 * 4
    return int(min(1024, max(64, free // 4 // per_sequence)) // 64 * 64)


def synchronize() -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def resolve_attention(
    requested: str, model_config: Any, device: torch.device, max_length: int = 512, precision: str = "bf16"
) -> str:
    """auto -> eager attention for bf16 CPU training of short inputs with small heads, SDPA otherwise.

    PyTorch's CPU flash-attention backward is slow for 32-dim heads (MiniLM) in bf16: at 256 tokens eager attention
    trained 1.3-2.3x faster on AMX and 1.2-1.4x on AVX512-BF16 without AMX (2026-12-07). In fp32 (CPUs without bf16
    units) SDPA trained faster instead (10-13 % less a step at 256 tokens, AVX-512 and AVX2 kernels; 2026-12-06). At
    512 tokens the S x S probabilities eager attention keeps make it the slower one (4.1 vs 5.0 samples/s), and for
    64-dim heads (DistilBERT, BERT-base) the two were even, so SDPA, the library default, stays there."""
    if requested != "auto":
        return requested
    hidden = getattr(model_config, "hidden_size", None) or getattr(model_config, "dim", None)
    heads = getattr(model_config, "num_attention_heads", None) or getattr(model_config, "n_heads", None)
    small_heads = bool(hidden and heads and hidden // heads <= 32)
    if device.type == "cpu" and precision == "bf16" and small_heads and max_length <= 256:
        return "eager"
    return "sdpa"
