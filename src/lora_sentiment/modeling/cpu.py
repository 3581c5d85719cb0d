"""What kind of CPU this is, for every `auto` choice that depends on it (precision, prediction engine): one
class from the CPU's flags, and what that class does fast. No torch here: the classifier runs on flag sets
recorded from other machines in the tests, and `bench` records the class beside every number.

Why classes and not single flags: the same choice flips between them. bf16 matmuls run 3-7x faster than fp32
with AMX and about 2x with AVX512-BF16 alone, but 5x *slower* without either (oneDNN emulates them), while
int8 dot products (VNNI, ARM dotprod) run about 2x fp32 on all of them (docs/benchmarks/cpu-classes.md)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# Fastest first. The x86 ones follow the ISA levels oneDNN knows (ONEDNN_MAX_CPU_ISA), so a cap maps onto them.
CpuClass = Literal[
    "amx", "avx512-bf16", "avx512-vnni", "avx512", "avx2-vnni", "avx2", "arm-bf16", "arm-dotprod", "arm", "basic"
]
CLASSES: dict[str, str] = {
    "amx": "AMX tiles: bf16 and int8 matmuls several times fp32",
    "avx512-bf16": "AVX512-BF16 without AMX: bf16 about 2x fp32, int8 (VNNI) about 2x",
    "avx512-vnni": "AVX-512 + VNNI, no bf16 units: bf16 about 5x slower than fp32, int8 about 2x faster",
    "avx512": "AVX-512 without VNNI: no bf16 units, int8 only somewhat faster than fp32",
    "avx2-vnni": "AVX2 + AVX-VNNI (Alder Lake and later laptops): no bf16 units, int8 dot products",
    "avx2": "AVX2 only (most older laptops and VMs): fp32; int8 without dot-product units",
    "arm-bf16": "ARM with bf16 and int8 matrix instructions (e.g. Graviton 3, Apple M2 and later)",
    "arm-dotprod": "ARM with int8 dot products, no bf16 (e.g. Graviton 2, Apple M1)",
    "arm": "ARM without dot products",
    "basic": "none of the above: fp32",
}
BF16_UNITS = {"amx", "avx512-bf16", "arm-bf16"}
INT8_UNITS = {"amx", "avx512-bf16", "avx512-vnni", "avx2-vnni", "arm-bf16", "arm-dotprod"}
# Where an int8 model beats the compiled model `--engine auto` runs otherwise, so that checking one per run can
# repay its quantizing (~40 s): int8 dot-product units, but not beside AMX's bf16 tiles, which ran OpenVINO's bf16
# as fast (2026-12-03, MiniLM at 256 tokens, 500 reviews in interleaved rounds: int8 11.2 s, bf16 11.7 s; the day
# before 11.4-11.7 s against 11.7 s; docs/benchmarks/cpu-classes.md).
INT8_PAYS = INT8_UNITS - {"amx"}

# ONEDNN_MAX_CPU_ISA values (oneDNN's documented names) -> the best class they leave. ATEN_CPU_CAPABILITY caps
# ATen's own kernels the same way ("avx2", "avx512", "default").
_ONEDNN_CAPS = {
    "SSE41": "basic",
    "AVX": "basic",
    "AVX2": "avx2",
    "AVX2_VNNI": "avx2-vnni",
    "AVX2_VNNI_2": "avx2-vnni",
    "AVX512_CORE": "avx512",
    "AVX512_CORE_VNNI": "avx512-vnni",
    "AVX512_CORE_BF16": "avx512-bf16",
    "AVX512_CORE_FP16": "avx512-bf16",
    "AVX10_1_512": "avx512-bf16",
    "AVX512_CORE_AMX": "amx",
    "AVX512_CORE_AMX_FP16": "amx",
    "AVX10_1_512_AMX": "amx",
    "AVX10_1_512_AMX_FP16": "amx",
    "AVX10_2_512_AMX_2": "amx",
    "DEFAULT": "amx",
    "ALL": "amx",
}
_ATEN_CAPS = {"default": "basic", "avx2": "avx2", "avx512": "amx", "zvector": "basic", "sve256": "arm-bf16"}
_X86_ORDER = ["basic", "avx2", "avx2-vnni", "avx512", "avx512-vnni", "avx512-bf16", "amx"]


def classify(flags: Iterable[str], machine: str = "x86_64") -> CpuClass:
    """The class of a CPU from its flags (/proc/cpuinfo's `flags` on x86, `Features` on ARM)."""
    have = {flag.lower() for flag in flags}
    if machine.lower() in ("aarch64", "arm64"):
        if "bf16" in have and ("i8mm" in have or "asimddp" in have):
            return "arm-bf16"
        return "arm-dotprod" if "asimddp" in have else "arm"
    if "amx_bf16" in have:
        return "amx"
    if "avx512_bf16" in have:
        return "avx512-bf16"
    if "avx512f" in have:
        return "avx512-vnni" if "avx512_vnni" in have else "avx512"
    if "avx2" in have:
        return "avx2-vnni" if "avx_vnni" in have else "avx2"
    return "basic"


def capped(found: CpuClass, environ: dict[str, str] | os._Environ[str] = os.environ) -> CpuClass:
    """`found`, lowered to what ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY let torch use: the documented switches
    that make one machine stand in for a weaker class. (OpenVINO and ONNX Runtime ignore both.)"""
    if found not in _X86_ORDER:
        return found
    rank = _X86_ORDER.index(found)
    for name, caps in (("ONEDNN_MAX_CPU_ISA", _ONEDNN_CAPS), ("ATEN_CPU_CAPABILITY", _ATEN_CAPS)):
        cap = caps.get(environ.get(name, "").strip().upper() if name.startswith("ONEDNN") else
                       environ.get(name, "").strip().lower())  # fmt: skip
        if cap in _X86_ORDER:
            rank = min(rank, _X86_ORDER.index(cap))
    return _X86_ORDER[rank]  # type: ignore[return-value]


@dataclass(frozen=True)
class CpuKind:
    name: CpuClass  # what torch may use here (capped)
    found: CpuClass  # what the flags say
    model: str | None

    @property
    def bf16_units(self) -> bool:
        return self.name in BF16_UNITS

    @property
    def int8_pays(self) -> bool:
        """An int8 model runs faster than the unquantized compiled one here (INT8_PAYS)."""
        return self.name in INT8_PAYS

    def describe(self) -> str:
        cap = (
            f" (capped from {self.found} by ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY)"
            if self.found != self.name
            else ""
        )
        return f"{self.name}{cap}: {CLASSES[self.name]}"


@functools.cache
def cpu_flags() -> tuple[str | None, tuple[str, ...]]:
    """The CPU's model name and flags, read once: /proc/cpuinfo on Linux, sysctl on macOS."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            lines = cpuinfo.read().splitlines()
    except OSError:
        return _darwin_flags()
    block = lines[: lines.index("")] if "" in lines else lines  # the first processor's block
    first = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in block if ":" in line}
    flags = first.get("flags") or first.get("Features") or ""
    return first.get("model name") or first.get("CPU part"), tuple(flags.split())


def _darwin_flags() -> tuple[str | None, tuple[str, ...]]:
    if platform.system() != "Darwin":
        return None, ()
    names = {"hw.optional.arm.FEAT_BF16": "bf16", "hw.optional.arm.FEAT_DotProd": "asimddp",
             "hw.optional.arm.FEAT_I8MM": "i8mm"}  # fmt: skip
    flags = []
    for key, flag in names.items():
        try:
            done = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5, check=False)
        except OSError:
            continue
        if done.stdout.strip() == "1":
            flags.append(flag)
    return platform.processor() or None, tuple(flags)


def this_cpu() -> CpuKind:
    model, flags = cpu_flags()
    found = classify(flags, platform.machine())
    return CpuKind(capped(found), found, model)
