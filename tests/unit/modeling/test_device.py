"""device.py: the hardware facts that choose the device and precision."""

import pytest
import torch

from lora_sentiment.errors import UserError
from lora_sentiment.modeling import device


def test_cpu_info_is_read_once_and_drives_bf16(monkeypatch):
    info = device.cpu_info()
    assert device.cpu_info() is info  # cached: /proc/cpuinfo is parsed once per process
    assert isinstance(info["flags"], list)
    monkeypatch.setattr(device, "cpu_info", lambda: {"model": "x", "flags": ["avx2", "amx_bf16"]})
    assert device.cpu_has_fast_bf16()
    assert device.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(device, "cpu_info", lambda: {"model": "x", "flags": ["avx2"]})
    assert device.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_explicit_precision_and_what_a_cpu_cannot_do():
    cpu = torch.device("cpu")
    assert device.resolve_precision("fp32", cpu) == "fp32" and device.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(UserError, match="--precision fp16 needs a CUDA GPU"):
        device.resolve_precision("fp16", cpu)
    assert device.TORCH_DTYPES["bf16"] is torch.bfloat16


def test_padding_multiple_only_on_gpus():
    assert device.pad_multiple(torch.device("cpu")) is None
    assert device.pad_multiple(torch.device("cuda", 0)) == 16
