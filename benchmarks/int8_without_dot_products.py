"""int8 paths for CPUs without int8 dot-product units (class avx2), against the run's compiled OpenVINO f32 model
(what `--engine auto` predicts with there): ONNX Runtime's dynamic int8 with int8 weights (the export), with
7-bit weights (`reduce_range`, ONNX Runtime's advice against the 16-bit saturation of AVX2's u8 x s8 products)
and with uint8 weights; and OpenVINO with int8-compressed weights (NNCF `compress_weights`, no calibration),
with and without the CPU plugin's dynamic quantization of activations. Interleaved rounds in one process on the
same length-sorted batches of 16; labels against OpenVINO f32's.

    python benchmarks/int8_without_dot_products.py RUN ../shared/data/imdb-sample/validation.parquet --rows 500 \
        --rounds 3 --output benchmarks/results/int8-without-dot-products-avx2-cpu-DATE.json

RUN must have been predicted with OpenVINO once (its `.compiled/openvino-*` folder is the f32 model used here).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from engine_loops import onnxruntime_pass, onnxruntime_session, openvino_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", help="a Parquet file with text and label columns")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    import nncf
    import openvino
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    from lora_sentiment.data.encoding import TextEncoder, padded_batches
    from lora_sentiment.export.writing import export_run
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.runs.run import Run

    compiled = [p for p in (args.run / ".compiled").glob("openvino-*") if (p / "openvino_model.xml").is_file()]
    if not compiled:
        parser.error(f"{args.run} has no compiled OpenVINO model: predict with it once (--engine openvino)")
    rows = pd.read_parquet(args.data).sample(args.rows, random_state=1)
    gold = rows.label.to_numpy()
    run = Run.open(args.run)
    names = json.loads((compiled[0] / "export.json").read_text())["inputs"]
    tokenizer = AutoTokenizer.from_pretrained(str(compiled[0]))
    batches = list(padded_batches(tokenizer, TextEncoder.for_config(tokenizer, run.config)(rows.text.tolist()),
                                  names, 16))  # fmt: skip
    core = openvino.Core()

    shape = (len(rows), 2)

    def openvino_loop(model, extra):
        return openvino_pass(core, model, batches, shape, **extra)

    def onnxruntime_loop(path):
        return onnxruntime_pass(onnxruntime_session(path), batches, shape)

    def read():
        return core.read_model(str(compiled[0] / "openvino_model.xml"))

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        export_run(run.path, folder / "onnx", format="onnx", log=lambda _: None)
        plain = str(folder / "onnx" / "model.onnx")
        weights = {"int8 weights (the export)": {}, "7-bit weights (reduce_range)": {"reduce_range": True}}
        loops = {"OpenVINO f32 (the default on avx2)": lambda: openvino_loop(read(), {})}
        for name, extra in weights.items():
            path = folder / f"{len(loops)}.onnx"
            quantize_dynamic(plain, str(path), weight_type=QuantType.QInt8, per_channel=True, **extra)
            loops[f"ONNX Runtime dynamic int8, {name}"] = lambda path=path: onnxruntime_loop(path)
        quantize_dynamic(plain, str(folder / "u8.onnx"), weight_type=QuantType.QUInt8, per_channel=True)
        loops["ONNX Runtime dynamic int8, uint8 weights"] = lambda: onnxruntime_loop(folder / "u8.onnx")
        compressed = nncf.compress_weights(read(), mode=nncf.CompressWeightsMode.INT8_ASYM)
        loops["OpenVINO int8-compressed weights, activations f32"] = lambda: openvino_loop(
            compressed, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
        )  # fmt: skip
        loops["OpenVINO int8-compressed weights, activations quantized per 32"] = lambda: openvino_loop(
            compressed, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 32}
        )  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in loops}
        labels: dict[str, np.ndarray] = {}
        for round_ in range(args.rounds):
            for name, loop in loops.items():
                out, took = loop()
                seconds[name].append(took)
                labels[name] = out.argmax(1)
                print(f"round {round_ + 1}: {name}: {took:.1f} s", flush=True)
    reference = "OpenVINO f32 (the default on avx2)"
    results = {"cpu": this_cpu().describe(), "date": time.strftime("%Y-%m-%d"), "rows": len(rows), "variants": {}}
    for name in loops:
        ratios = [f / s for f, s in zip(seconds[reference], seconds[name])]  # per round: the same minute's noise
        results["variants"][name] = {
            "seconds": seconds[name], "vs_openvino_f32_per_round": ratios,
            "labels_equal_to_openvino_f32": float((labels[name] == labels[reference]).mean()),
            "accuracy": float((labels[name] == gold).mean()),
        }  # fmt: skip
        print(f"{name}: {' / '.join(f'{r:.2f}' for r in ratios)}x OpenVINO f32, labels equal "
              f"{results['variants'][name]['labels_equal_to_openvino_f32']:.3f}, accuracy "
              f"{results['variants'][name]['accuracy']:.3f}")  # fmt: skip
    if args.output:
        args.output.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
