"""The default engine's int8 per problem type: for each run, what `predict RUN` uses on this CPU (its per-run int8
check, export/int8_gate.py, and its verdict), then the default and torch fp32 on the run's whole evaluation split:
the headline score of each, how many answers agree, and the largest change of a probability (or value).

    python benchmarks/int8_default.py RUN [RUN ...] --output benchmarks/results/int8-default-cpu-DATE.jsonl

The check reads 400 of these texts, so the split is not wholly unseen by the decision: agreement is also given on
the texts it did not read (`unseen`), where the int8 model's second look (its band) was not fitted."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def measure(run_dir: str) -> dict:
    from lora_sentiment.export.int8_gate import INT8_SUFFIX, VERDICT_FILE, check_rows
    from lora_sentiment.modeling.cpu import this_cpu
    from lora_sentiment.opening import open_predictor
    from lora_sentiment.options import LoadOptions
    from lora_sentiment.runs.run import Run

    run = Run.open(run_dir)
    started = time.perf_counter()
    default = open_predictor(run_dir)  # compiles and checks int8 on a first call
    opened = time.perf_counter() - started
    exact = open_predictor(run_dir, LoadOptions(engine="torch", precision="fp32"))
    texts, labels = check_rows(run, n=10**9)
    seen = set(check_rows(run)[0])
    unseen = np.array([text not in seen for text in texts])
    ours, theirs = default.predict_scores(texts), exact.predict_scores(texts)
    space, problem = exact.space, exact.space.problem
    compiled = next(p for p in (run.path / ".compiled").iterdir() if not p.name.endswith(INT8_SUFFIX))
    verdict_file = compiled / VERDICT_FILE
    scores = {}
    for name, predicted in (("default", ours), ("torch_fp32", theirs)):
        metrics = problem.evaluate(space, labels, predicted, detailed=False)
        scores[name] = {m: float(v) for m, v in metrics.items() if m in problem.metrics}
    return {
        "run": run_dir, "problem_type": space.problem_type, "cpu_class": this_cpu().name, "texts": len(texts),
        "default": {"device": default.device, "precision": default.precision, "open_seconds": opened},
        "verdict": json.loads(verdict_file.read_text()) if verdict_file.is_file() else None,
        "scores": scores, "agreement": float(problem.same_answers(space, theirs, ours, labels).mean()),
        "unseen": {"texts": int(unseen.sum()), "agreement": float(
            problem.same_answers(space, theirs[unseen], ours[unseen], labels[unseen]).mean())},
        "largest_change": float(np.abs(ours - theirs).max()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--output", help="append one JSON line per run here")
    args = parser.parse_args()
    for run_dir in args.runs:
        entry = measure(run_dir)
        print(json.dumps(entry), flush=True)
        if args.output:
            with Path(args.output).open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
