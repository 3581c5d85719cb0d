"""device.py: the hardware facts that choose the device and precision."""

import pytest
import torch

from lora_sentiment.errors import UserError
from lora_sentiment.modeling import cpu, device


def test_cpu_flags_are_read_once_and_the_class_drives_bf16(monkeypatch):
    assert cpu.cpu_flags() is cpu.cpu_flags()  # cached: /proc/cpuinfo is parsed once per process
    assert isinstance(device.cpu_info()["flags"], list)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ("x", ("avx2", "avx512f", "amx_bf16", "amx_tile")))
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    assert device.cpu_has_fast_bf16()
    assert device.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")  # the stand-in for a CPU without bf16 units
    assert device.resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ("x", ("avx2",)))
    assert device.resolve_precision("auto", torch.device("cpu")) == "fp32"


# Flags recorded from real machines (/proc/cpuinfo), trimmed to those that matter, and the class each is.
RECORDED = [
    (
        "x86_64",
        "fma avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8",
        "amx",
    ),  # Sapphire Rapids
    ("x86_64", "fma avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx512_vbmi2", "avx512-bf16"),  # EPYC Zen 4
    ("x86_64", "fma avx2 avx512f avx512bw avx512vl avx512_vnni avx512_vbmi2", "avx512-vnni"),  # this project's VMs
    ("x86_64", "fma avx2 avx512f avx512bw avx512vl", "avx512"),  # Skylake-SP
    ("x86_64", "fma avx2 avx_vnni", "avx2-vnni"),  # Alder Lake laptop
    ("x86_64", "fma avx2 f16c", "avx2"),  # Zen 2/3, Haswell..Comet Lake
    ("x86_64", "avx fma avx2 f16c bmi2 sha_ni vaes vpclmulqdq", "avx2"),  # EPYC Zen 3 VM, this project's (2026-12-06)
    ("x86_64", "sse4_2", "basic"),
    ("aarch64", "fp asimd asimddp sve i8mm bf16", "arm-bf16"),  # Graviton 3
    ("arm64", "bf16 asimddp i8mm", "arm-bf16"),  # Apple M2 (from sysctl)
    ("aarch64", "fp asimd asimddp", "arm-dotprod"),  # Graviton 2
    ("aarch64", "fp asimd", "arm"),
]


@pytest.mark.parametrize(("machine", "flags", "expected"), RECORDED)
def test_cpu_classes_from_recorded_flag_sets(machine, flags, expected):
    found = cpu.classify(flags.split(), machine)
    assert found == expected
    assert (found in cpu.BF16_UNITS) == (expected in ("amx", "avx512-bf16", "arm-bf16"))
    assert expected in cpu.CLASSES


def test_isa_caps_lower_the_class_as_torch_sees_it():
    assert cpu.capped("amx", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}) == "avx512-vnni"
    assert cpu.capped("amx", {"ONEDNN_MAX_CPU_ISA": "avx2"}) == "avx2"
    assert cpu.capped("avx512-vnni", {"ATEN_CPU_CAPABILITY": "avx2"}) == "avx2"
    assert cpu.capped("avx2", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}) == "avx2"  # a cap never raises
    assert cpu.capped("avx512-bf16", {}) == "avx512-bf16"
    kind = cpu.CpuKind("avx2", "amx", "x")
    assert not kind.bf16_units and not kind.int8_pays and "capped from amx" in kind.describe()


def test_explicit_precision_and_what_a_cpu_cannot_do():
    cpu = torch.device("cpu")
    assert device.resolve_precision("fp32", cpu) == "fp32" and device.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(UserError, match="--precision fp16 needs a CUDA GPU"):
        device.resolve_precision("fp16", cpu)
    assert device.TORCH_DTYPES["bf16"] is torch.bfloat16


def test_bf16_asked_on_a_cpu_without_bf16_units_is_told_once(monkeypatch):
    """bf16 emulated took 5x fp32's time on an avx2 CPU: a user who copies `--precision bf16` hears it, once."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ("x", ("fma", "avx2", "f16c")))
    notes: list[str] = []
    monkeypatch.setattr(device.LOG, "warning", notes.append)  # the CLI's handler may stop propagation to caplog
    device._slow_bf16_note.cache_clear()
    cpu_device = torch.device("cpu")
    assert device.resolve_precision("bf16", cpu_device) == "bf16"  # still what was asked
    device.resolve_precision("bf16", cpu_device)
    assert notes == ["note: --precision bf16 on this CPU (avx2: no bf16 units) runs several times slower than "
                     "fp32; --precision auto chooses fp32 here"]  # fmt: skip
    with pytest.raises(UserError, match=r"use --precision fp32 \(or auto\) on this machine"):
        device.resolve_precision("fp16", cpu_device)
    notes.clear()
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ("x", ("avx2", "avx512f", "amx_bf16", "amx_tile")))
    device._slow_bf16_note.cache_clear()
    device.resolve_precision("bf16", cpu_device)
    device.resolve_precision("fp32", cpu_device)
    assert not notes
    with pytest.raises(UserError, match="use --precision bf16 or fp32 on this machine"):
        device.resolve_precision("fp16", cpu_device)


def test_padding_multiple_only_on_gpus():
    assert device.pad_multiple(torch.device("cpu")) is None
    assert device.pad_multiple(torch.device("cuda", 0)) == 16


def test_evaluation_batches_are_small_on_a_cpu_unless_asked():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert device.eval_batch_size("auto", cpu) == device.CPU_BATCH == 16
    assert device.eval_batch_size("auto", gpu) == 64
    assert device.eval_batch_size(48, cpu) == 48 and device.eval_batch_size(8, gpu) == 8
