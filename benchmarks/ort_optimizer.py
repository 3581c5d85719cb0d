"""`export --format onnx` against the same graph through ONNX Runtime's transformer optimizer (fused Attention,
EmbedLayerNormalization, SkipLayerNormalization, BiasGelu; its contrib ops run on ONNX Runtime only), fp32 and
dynamic int8, each graph exported from the merged run with SDPA (what the export writes) and with eager attention
(the pattern the optimizer's attention fusion matches). Interleaved rounds in one process; labels and
probabilities against the export's own fp32 graph.

    python benchmarks/ort_optimizer.py RUN ../shared/data/imdb-sample/validation.parquet --rows 300 \
        --output benchmarks/results/ort-optimizer-avx512-bf16-cpu-2026-12-04.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from engine_loops import onnxruntime_pass, onnxruntime_session


def graphs(run_dir: Path, folder: Path) -> tuple[dict[str, Path], list[str], dict[str, dict[str, int]]]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    from lora_sentiment.export.engines.onnx import write_onnx
    from lora_sentiment.export.writing import _calibration_in_weights
    from lora_sentiment.modeling.model import load_run_model
    from lora_sentiment.runs.run import Run

    run = Run.open(run_dir)
    model, tokenizer = load_run_model(run)
    model.eval()
    _calibration_in_weights(model, run.space)
    files, fused = {}, {}
    for attention in ("sdpa", "eager"):
        model.set_attn_implementation(attention)
        plain = folder / f"{attention}.onnx"
        names = write_onnx(model, tokenizer, plain, "none")
        optimized = optimizer.optimize_model(str(plain), model_type="bert", num_heads=model.config.num_attention_heads,
                                             hidden_size=model.config.hidden_size)  # fmt: skip
        fused[attention] = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
        optimized.save_model_to_file(str(folder / f"{attention}.optimized.onnx"))
        for graph in (f"{attention}", f"{attention}.optimized"):
            files[f"{graph} fp32"] = folder / f"{graph}.onnx"
            # the optimizer's contrib ops leave shape inference without a type: name the default, float
            quantize_dynamic(
                str(folder / f"{graph}.onnx"), str(folder / f"{graph}.int8.onnx"), weight_type=QuantType.QInt8,
                per_channel=True, extra_options={"DefaultTensorType": 1},
            )  # fmt: skip
            files[f"{graph} int8"] = folder / f"{graph}.int8.onnx"
    return files, names, fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", help="a Parquet file with a text column")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    import onnxruntime
    from transformers import AutoTokenizer

    from lora_sentiment.data.encoding import TextEncoder, padded_batches
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.runs.run import Run

    run = Run.open(args.run)
    texts = pd.read_parquet(args.data)[run.config.text_column].tolist()[: args.rows]
    with tempfile.TemporaryDirectory() as scratch:
        files, names, fused = graphs(args.run, Path(scratch))
        tokenizer = AutoTokenizer.from_pretrained(str(args.run))
        batches = list(padded_batches(tokenizer, TextEncoder.for_config(tokenizer, run.config)(texts), names, 32))
        sessions = {name: onnxruntime_session(file, args.threads) for name, file in files.items()}
        seconds: dict[str, list[float]] = {name: [] for name in sessions}
        logits: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):
            for name, session in sessions.items():
                logits[name], took = onnxruntime_pass(session, batches, (len(texts), len(run.space.names)))
                seconds[name].append(round(took, 2))

    probabilities = run.space.problem.scores  # as `predict` turns logits into scores
    reference = logits["sdpa fp32"]
    base = float(np.median(seconds["sdpa fp32"]))
    rows = {name: {"seconds": seconds[name], "x_export_fp32": round(base / float(np.median(seconds[name])), 2),
                   "labels_equal": float((logits[name].argmax(1) == reference.argmax(1)).mean()),
                   "largest_change": float(np.abs(probabilities(logits[name]) - probabilities(reference)).max())}
            for name in sessions}  # fmt: skip
    result = {"command": "benchmarks/ort_optimizer.py", "rows": len(texts), "fused": fused, "graphs": rows,
              "onnxruntime": onnxruntime.__version__, "cpu_class": this_cpu().name,
              "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
