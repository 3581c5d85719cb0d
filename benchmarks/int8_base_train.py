"""Would int8 matmuls for the frozen base speed up LoRA training on a CPU without bf16 units? An experiment, not a
path of the package: every frozen linear layer of the encoder (not LoRA's, not the head) runs its forward matmul
in int8 (`torch._int_mm`: weights per output channel, activations per row, quantized on each call), and optionally
its input gradient too (the gradient per row, the weights per input channel: SwitchBack's split, Wortsman et al.
2023; frozen weights need no weight gradient). Seconds per training step of the default model on the longest
length-grouped batches of real reviews, the variants in turn, three rounds, in one process with training's
memory policy (training/memory.py).

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/int8_base_train.py --model "$MINILM"

Accuracy is not measured here: a variant worth building would need it (seeds, the shared validation set).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from types import SimpleNamespace

import pandas as pd
import torch
from profile_train import batches, train_step
from step_args import TRAIN_SAMPLE as SAMPLE

from lora_sentiment.config import TrainConfig
from lora_sentiment.modeling.cpu import this_cpu
from lora_sentiment.modeling.model import setup_model
from lora_sentiment.problems.space import LabelSpace
from lora_sentiment.training import memory


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = x.abs().amax(1, keepdim=True).clamp_min_(1e-12).div_(127)
    return torch.div(x, scale).round_().to(torch.int8), scale


class FrozenInt8(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, layer, int8_backward):  # noqa: ANN001, ANN205
        shape = x.shape
        xq, scale = quantize_rows(x.reshape(-1, shape[-1]))
        out = torch._int_mm(xq, layer.int8_t).to(x.dtype).mul_(scale).mul_(layer.int8_scale)
        if layer.bias is not None:
            out.add_(layer.bias)
        ctx.layer, ctx.shape, ctx.int8_backward = layer, shape, int8_backward
        return out.view(*shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        layer, flat = ctx.layer, grad.reshape(-1, grad.shape[-1])
        if ctx.int8_backward:
            gq, scale = quantize_rows(flat)
            out = torch._int_mm(gq, layer.int8_in).to(grad.dtype).mul_(scale).mul_(layer.int8_in_scale)
        else:
            out = flat @ layer.weight
        return out.view(ctx.shape), None, None


def int8_base(model: torch.nn.Module, int8_backward: bool) -> int:
    """Frozen linear layers of the encoder switched to FrozenInt8; how many."""
    count = 0
    for name, layer in model.named_modules():
        if type(layer) is torch.nn.Linear and not layer.weight.requires_grad and "lora_" not in name \
                and "classifier" not in name:  # fmt: skip
            w = layer.weight.detach()
            layer.int8_scale = w.abs().amax(1).clamp_min(1e-12) / 127
            layer.int8_t = (w / layer.int8_scale[:, None]).round().to(torch.int8).t().contiguous()
            layer.int8_in_scale = w.abs().amax(0).clamp_min(1e-12) / 127
            layer.int8_in = (w / layer.int8_in_scale[None, :]).round().to(torch.int8).contiguous()
            layer.forward = lambda x, layer=layer: FrozenInt8.apply(x, layer, int8_backward)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kept = memory.KeepFreedMemory(memory.Allocator.for_this_process())
    kept.on_train_begin(None, None, None)
    texts = pd.read_parquet(SAMPLE)["text"].sample(n=16 * (args.steps + 2) * 4, random_state=0).tolist()
    print(this_cpu().describe())
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for variant in ("fp32", "int8 forward", "int8 forward and input gradient"):
            torch.manual_seed(0)
            config = TrainConfig(model=args.model, max_length=256, batch_size=16)
            setup = setup_model(config, LabelSpace("single-label", ["Negative", "Positive"]), "fp32", lambda _: None)
            model = setup.model.train()
            if variant != "fp32":
                int8_base(model, int8_backward="gradient" in variant)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
            steps = batches(setup.tokenizer, texts, 16, 256)[-(args.steps + 2) :]

            def step(batch: dict) -> None:
                train_step(model, optimizer, nullcontext(), batch)  # noqa: B023
                kept.on_step_end(None, None, SimpleNamespace(should_evaluate=False))

            for batch in steps[:2]:
                step(batch)
            start = time.perf_counter()
            for batch in steps[2:]:
                step(batch)
            results.setdefault(variant, []).append((time.perf_counter() - start) / args.steps)
            print(f"{variant}: {results[variant][-1]:.3f} s a step", flush=True)
    for variant, seconds in results.items():
        print(f"{variant}: " + " / ".join(f"{s:.3f}" for s in seconds))
    kept.release()


if __name__ == "__main__":
    main()
