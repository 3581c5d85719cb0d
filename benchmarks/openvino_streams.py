"""OpenVINO's loop two ways on the same texts, interleaved in one process: a job's batches one after another on
the latency model (one request over every thread), and side by side on the throughput streams (the session's
`map`, what a job of two or more batches runs). Each in bf16 where the CPU has it and in f32.

    python benchmarks/openvino_streams.py FOLDER [FOLDER ...] --data train.parquet --rows 1000 --rounds 3
FOLDER: an OpenVINO export or a run's compiled model (RUN/.compiled/openvino-*).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--data", required=True, help="a Parquet or CSV file with a text column")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output")
    args = parser.parse_args()
    from lora_sentiment.bench.harness import machine_description
    from lora_sentiment.export.folder import ExportedClassifier
    from lora_sentiment.modeling.cpu import this_cpu

    read = pd.read_parquet if args.data.endswith(".parquet") else pd.read_csv
    texts = read(args.data)["text"].astype(str).tolist()[: args.rows]
    print(this_cpu().describe(), flush=True)
    results: dict = {"machine": machine_description("cpu"), "rows": len(texts), "loops": {}}
    for folder in args.folders:
        for precision in ("auto", "fp32"):
            predictor = ExportedClassifier.open(folder, precision=precision)
            session = predictor.session
            one_by_one = {"map": lambda batches, s=session: [s(feeds) for feeds in batches]}
            predictor.predict_scores(texts[:64])  # warm-up, and the throughput compile
            for _ in range(args.rounds):
                for way in ("one request", "side by side"):
                    if way == "one request":
                        session.__dict__.update(one_by_one)
                    else:
                        session.__dict__.pop("map", None)
                    start = time.perf_counter()
                    scores = predictor.predict_scores(texts)
                    seconds = round(time.perf_counter() - start, 2)
                    key = f"{folder} --precision {precision} ({predictor.precision}) {way}"
                    results["loops"].setdefault(key, {"seconds": [], "labels": []})["seconds"].append(seconds)
                    results["loops"][key]["labels"] = np.argmax(scores, axis=1).tolist()
                    print(f"{key}: {seconds} s", flush=True)
    for key, loop in results["loops"].items():
        twin = key.replace("side by side", "one request")
        if key != twin:
            same = float(np.mean(np.array(loop["labels"]) == np.array(results["loops"][twin]["labels"])))
            print(f"{key}: labels equal to one request's {same:.4f}")
    for loop in results["loops"].values():
        del loop["labels"]
    if args.output:
        with open(args.output, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
