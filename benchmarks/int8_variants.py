"""Which NNCF int8 settings keep a run's labels equal to fp32? Each variant quantizes the run's OpenVINO graph
(calibrated on 256 of its training texts, as `export --quantize int8` does, unless it says otherwise) and
predicts the same validation reviews with OpenVINO at f32 (no bf16: the int8 layers are the only change),
against the unquantized graph. "output projections in float, 128 texts" is what `predict`'s default checks per
run (export/int8_gate.py).

    python benchmarks/int8_variants.py RUN ../shared/data/imdb-sample/validation.parquet --rows 1000 \
        --output benchmarks/results/int8-variants-cpu-DATE.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from engine_loops import openvino_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("data", help="Parquet/CSV with text and label columns")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants (their names)")
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args()

    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
    from transformers import AutoTokenizer

    from lora_sentiment.data.encoding import TextEncoder, padded_batches
    from lora_sentiment.export.engines.openvino import OUTPUT_PROJECTIONS, calibration_texts
    from lora_sentiment.export.writing import export_run
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.runs.run import Run

    smooth = AdvancedSmoothQuantParameters
    projections = nncf.IgnoredScope(patterns=OUTPUT_PROJECTIONS, validate=False)
    variants = {
        "TRANSFORMER (the export's default)": {},
        "head and pooler in float": {
            "ignored_scope": nncf.IgnoredScope(patterns=[".*classifier.*", ".*pooler.*"], validate=False)
        },  # fmt: skip
        "SmoothQuant alpha 0.5": {
            "advanced_parameters": AdvancedQuantizationParameters(smooth_quant_alphas=smooth(matmul=0.5))
        },  # fmt: skip
        "no SmoothQuant": {
            "advanced_parameters": AdvancedQuantizationParameters(smooth_quant_alphas=smooth(matmul=-1))
        },  # fmt: skip
        "PERFORMANCE preset": {"preset": nncf.QuantizationPreset.PERFORMANCE},
        "output projections in float": {"ignored_scope": projections},
        "output projections in float, 128 texts": {"ignored_scope": projections, "texts": 128},
        "output projections in float, 64 texts": {"ignored_scope": projections, "texts": 64},
        "last two layers in float": {
            "ignored_scope": nncf.IgnoredScope(patterns=[".*layer[./](4|5)[./].*"], validate=False)
        },  # fmt: skip
        # The graph converted from ONNX has the scores' MatMuls; the one converted from torch (the default
        # since 2026-12-03) one ScaledDotProductAttention op a layer, whose query and key inputs NNCF quantizes.
        "attention scores in float": {
            "ignored_scope": nncf.IgnoredScope(
                patterns=[".*attention/self/MatMul.*"], types=["ScaledDotProductAttention"], validate=False
            )
        },  # fmt: skip
    }
    unknown = set(args.only or ()) - set(variants)
    if unknown:
        parser.error(f"--only: no variant {sorted(unknown)}; the variants: {sorted(variants)}")
    variants = {name: extra for name, extra in variants.items() if not args.only or name in args.only}
    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    frame = read(args.data)
    rows = frame.sample(min(args.rows, len(frame)), random_state=1)
    run = Run.open(args.run)
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "fp32"
        export_run(run.path, export, format="openvino", log=lambda _: None)
        names = json.loads((export / "export.json").read_text())["inputs"]
        tokenizer = AutoTokenizer.from_pretrained(str(export))
        encoder = TextEncoder.for_config(tokenizer, run.config)
        batches = list(padded_batches(tokenizer, encoder(rows.text.tolist()), names, 16))
        calibrations = {n: [f for _, f in padded_batches(tokenizer, encoder(calibration_texts(run.config, None, n)),
                                                         names, 16)] for n in (64, 128, 256)}  # fmt: skip
        core = openvino.Core()

        def logits(model):
            return openvino_pass(core, model, batches, (len(rows), 2))

        def read_graph():
            return core.read_model(str(export / "openvino_model.xml"))

        reference, reference_s = logits(read_graph())
        gold = rows.label.to_numpy()
        print(f"f32: {reference_s:.1f} s, accuracy {(reference.argmax(1) == gold).mean():.3f}")
        probabilities = run.space.problem.scores(reference)  # as `predict` turns logits into scores
        results = {"cpu_class": this_cpu().name, "run": args.run, "rows": len(rows), "variants": {}}
        for name, extra in variants.items():
            calibration = calibrations[extra.pop("texts", 256)]
            started = time.perf_counter()
            quantized = nncf.quantize(read_graph(), nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(calibration), **extra)  # fmt: skip
            quantize_s = time.perf_counter() - started
            out, seconds = logits(quantized)
            p = run.space.problem.scores(out)
            entry = {
                "quantize_s": quantize_s, "vs_f32": reference_s / seconds,
                "agreement": float((out.argmax(1) == reference.argmax(1)).mean()),
                "largest_change": float(np.abs(p - probabilities).max()),
                "accuracy": float((out.argmax(1) == gold).mean()),
                "accuracy_f32": float((reference.argmax(1) == gold).mean()),
            }  # fmt: skip
            results["variants"][name] = entry
            print(f"{name}: quantize {quantize_s:.1f} s, {entry['vs_f32']:.2f}x f32, labels agree "
                  f"{entry['agreement']:.4f}, largest probability change {entry['largest_change']:.3f}, accuracy "
                  f"{entry['accuracy']:.3f}", flush=True)  # fmt: skip
        if args.output:
            Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
