"""Where the default's int8 time goes on a run whose int8 `--engine auto` checked and kept: the loop (no start-up,
reading or writing) of the unquantized compiled model, of int8 as the check quantized it, alone and with its
second look (texts near a boundary predicted again by the unquantized model, export/int8_gate.py), and of int8
quantized the other way (`--int8-scope`), with the share of texts its own band would send to the second look and
the labels each keeps against the unquantized model.

    python benchmarks/int8_second_look.py RUN REVIEWS.csv --other-scope no-output-projections

RUN must have been checked (a `predict` job of 4,000 texts or more since it was compiled). Best of two passes each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def best_of(classifier, texts: list[str], passes: int = 2) -> tuple[float, np.ndarray]:
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        scores = classifier.predict_scores(texts)
        seconds.append(time.perf_counter() - started)
    return round(min(seconds), 2), scores


def main() -> None:
    from lora_sentiment.export.engines.openvino import quantize_folder
    from lora_sentiment.export.folder import ExportedClassifier
    from lora_sentiment.export.int8_gate import CALIBRATION_TEXTS, INT8_SUFFIX, RECHECK_MARGIN, check_rows
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.runs.run import Run

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("reviews", help="a CSV with a text column")
    parser.add_argument("--other-scope", default="no-output-projections", choices=["all", "no-output-projections"])
    args = parser.parse_args()
    run = Run.open(args.run)
    texts = pd.read_csv(args.reviews).text.tolist()
    compiled = run.path / ".compiled"
    f32 = next(p for p in compiled.iterdir() if p.is_dir() and not p.name.endswith(INT8_SUFFIX))
    unquantized = ExportedClassifier.open(f32)
    kept = ExportedClassifier.open(f32.with_name(f32.name + INT8_SUFFIX))
    if kept.recheck is None:
        raise SystemExit(f"{args.run}: its int8 model has no second look (checked? kept?)")
    result = {"cpu_class": this_cpu().name, "texts": len(texts), "seconds": {}, "shares": {}, "labels_equal": {}}
    result["seconds"]["unquantized"], reference = best_of(unquantized, texts)
    result["seconds"]["int8 with the second look"], looked = best_of(kept, texts)
    band = kept.recheck[0]
    kept.recheck = None
    result["seconds"]["int8 alone"], alone = best_of(kept, texts)
    space = unquantized.space
    with tempfile.TemporaryDirectory() as scratch:
        other_folder = Path(scratch) / "other"
        quantize_folder(f32, other_folder, run, CALIBRATION_TEXTS, args.other_scope, ("int8.json", "predicted.json"))
        other = ExportedClassifier.open(other_folder)
        result["seconds"][f"int8 {args.other_scope} alone"], other_scores = best_of(other, texts)
        check_texts, _ = check_rows(run)
        exact = ExportedClassifier.open(f32, precision="fp32").predict_scores(check_texts)
        other_band = RECHECK_MARGIN * float(np.abs(other.predict_scores(check_texts) - exact).max())
    for name, scores, width in (("int8", alone, band), (f"int8 {args.other_scope}", other_scores, other_band)):
        near = space.problem.near_boundary(space, scores, width)
        result["shares"][name] = {"band": width, "near": float(near.mean())}
        fixed = scores.copy()
        fixed[near] = reference[near]
        result["labels_equal"][f"{name} alone"] = float((scores.argmax(1) == reference.argmax(1)).mean())
        result["labels_equal"][f"{name} with its second look"] = float((fixed.argmax(1) == reference.argmax(1)).mean())
    result["labels_equal"]["the default (int8 with the second look)"] = float(
        (looked.argmax(1) == reference.argmax(1)).mean()
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
