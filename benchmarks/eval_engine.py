"""Would `train`'s evaluations pay for going through OpenVINO? One evaluation inside training, both ways, side by side
in one process on the same reviews: torch at the training precision (the LoRA model as it stands, unmerged, through
the package's prediction loop, standing in for the Trainer's) against what the compiled path would have to do at
every evaluation, since the adapter's weights change between them: merge a copy of the model, convert it with
OpenVINO's PyTorch frontend, compile it, and predict.

    python benchmarks/eval_engine.py RUN ../shared/data/imdb-sample/validation.parquet --rows 200 500 1000
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python benchmarks/eval_engine.py RUN ... (the avx512-vnni stand-in;
        OpenVINO ignores the cap, so it is run at f32 there by --precision fp32)
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("data", help="Parquet/CSV with a text column")
    parser.add_argument("--rows", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--precision", choices=["auto", "fp32"], default="auto",
                        help="auto: the precision train picks on this CPU (bf16 where it has the units)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args()

    import openvino
    import torch

    from lora_sentiment.data.encoding import padded_batches
    from lora_sentiment.export.engines.onnx import logits_module, trace_inputs
    from lora_sentiment.export.engines.openvino import OpenVinoSession
    from lora_sentiment.export.quiet import quiet_tracer
    from lora_sentiment.inference.classifier import Classifier
    from lora_sentiment.modeling.cpu import this_cpu

    cpu = this_cpu()
    precision = "bf16" if args.precision == "auto" and cpu.bf16_units else "fp32"
    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    frame = read(args.data)
    classifier = Classifier.from_run(args.run, precision=precision, device="cpu", merge=False)
    results = {"cpu_class": cpu.name, "precision": precision, "torch": torch.__version__,
               "openvino": openvino.__version__, "rounds": []}  # fmt: skip

    def compiled() -> tuple[OpenVinoSession, list[str], dict[str, float]]:
        seconds, started = {}, time.perf_counter()
        merged = copy.deepcopy(classifier.model).float().merge_and_unload().eval()
        seconds["merge"] = time.perf_counter() - started
        names, sample = trace_inputs(merged, classifier.encoder.tokenizer)
        started = time.perf_counter()
        with torch.no_grad(), quiet_tracer():
            graph = openvino.convert_model(
                logits_module(merged, names), example_input={n: sample[n] for n in names},
                input=[(n, openvino.PartialShape([-1, -1]), openvino.Type.i64) for n in names],
            )  # fmt: skip
        seconds["convert"] = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as scratch:  # the engine's session opens a file
            openvino.save_model(graph, f"{scratch}/m.xml", compress_to_fp16=False)
            started = time.perf_counter()
            session = OpenVinoSession(Path(scratch) / "m.xml", torch.get_num_threads(), precision)
            seconds["compile"] = time.perf_counter() - started
        return session, names, seconds

    for round_ in range(args.rounds):
        for rows in args.rows:
            texts = frame.text.sample(min(rows, len(frame)), random_state=round_).tolist()
            started = time.perf_counter()
            torch_scores = classifier.predict_scores(texts)
            torch_s = time.perf_counter() - started
            started = time.perf_counter()
            session, names, fixed = compiled()
            encoded, _ = classifier.encoder.encode(texts, classifier.long_text, classifier.stride)
            logits = np.empty((len(texts), torch_scores.shape[1]), np.float32)
            predict_started = time.perf_counter()
            for index, feeds in padded_batches(classifier.encoder.tokenizer, encoded, names, 32):
                logits[index] = session(feeds)
            predict_s = time.perf_counter() - predict_started
            total_s = time.perf_counter() - started
            same = float((logits.argmax(1) == torch_scores.argmax(1)).mean())
            entry = {"round": round_, "rows": len(texts), "torch_s": round(torch_s, 2),
                     "openvino_total_s": round(total_s, 2), "openvino_predict_s": round(predict_s, 2),
                     **{f"{k}_s": round(v, 2) for k, v in fixed.items()}, "labels_equal": same,
                     "saved_s": round(torch_s - total_s, 2)}  # fmt: skip
            results["rounds"].append(entry)
            print(json.dumps(entry), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
