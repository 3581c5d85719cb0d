"""Does torchao's dynamic int8 (Int8DynamicActivationInt8WeightConfig: int8 weights, activations quantized per
token on each call) speed up a run's prediction in torch, and do its labels stay equal to fp32? Same run, same
reviews, side by side in one process: torch fp32 (merged LoRA), torchao int8 eager, torchao int8 compiled.

    python benchmarks/torchao_int8.py RUN ../shared/data/imdb-sample/validation.parquet --rows 500
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("data", help="Parquet/CSV with text and label columns")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the int8 model")
    args = parser.parse_args()

    import torch
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    from lora_sentiment.inference.classifier import Classifier
    from lora_sentiment.modeling.cpu import this_cpu

    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    rows = read(args.data).sample(args.rows, random_state=1)
    texts = rows.text.tolist()
    fp32 = Classifier.from_run(args.run, precision="fp32", device="cpu")
    results = {"cpu_class": this_cpu().name, "rows": args.rows, "torch": torch.__version__}

    def timed(classifier, name):
        started = time.perf_counter()
        classifier.predict_scores(texts[:32])  # warm-up (compiles): first-call costs are not the steady speed
        results[f"{name}_warmup_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        scores = classifier.predict_scores(texts)
        results[f"{name}_s"] = round(time.perf_counter() - started, 2)
        return scores

    reference = timed(fp32, "fp32")
    if args.compile:
        compiled_fp32 = copy.copy(fp32)
        compiled_fp32.model = torch.compile(copy.deepcopy(fp32.model), dynamic=True)
        timed(compiled_fp32, "fp32_compiled")
        results["fp32_compiled_speedup"] = round(results["fp32_s"] / results["fp32_compiled_s"], 2)
    variants = [("int8_eager", False)] + ([("int8_compiled", True)] if args.compile else [])
    for name, compiled in variants:
        int8 = copy.copy(fp32)
        int8.model = copy.deepcopy(fp32.model)
        started = time.perf_counter()
        quantize_(int8.model, Int8DynamicActivationInt8WeightConfig(), filter_fn=_not_the_head(int8.model))
        if compiled:
            int8.model = torch.compile(int8.model, dynamic=True)
        results[f"{name}_quantize_s"] = round(time.perf_counter() - started, 2)
        scores = timed(int8, name)
        agree = float((scores.argmax(1) == reference.argmax(1)).mean())
        accuracy = float((scores.argmax(1) == rows.label.to_numpy()).mean())
        results[f"{name}_speedup"] = round(results["fp32_s"] / results[f"{name}_s"], 2)
        results[f"{name}_label_agreement"] = round(agree, 4)
        results[f"{name}_max_prob_diff"] = round(float(np.abs(scores - reference).max()), 4)
        results[f"{name}_accuracy"] = round(accuracy, 4)
    results["fp32_accuracy"] = round(float((reference.argmax(1) == rows.label.to_numpy()).mean()), 4)
    print(json.dumps(results, indent=1))


def _not_the_head(model):
    """Keeps the classifier head (and pooler) in fp32: a few small matmuls, where rounding moves labels."""
    head = {id(m) for name, m in model.named_modules() if name.split(".")[0] in {"classifier", "pre_classifier"}}
    head |= {id(m) for name, m in model.named_modules() if "pooler" in name}

    def keep(module, fqn):
        import torch

        return isinstance(module, torch.nn.Linear) and id(module) not in head

    return keep


if __name__ == "__main__":
    main()
