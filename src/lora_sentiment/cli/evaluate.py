"""`lora-sentiment evaluate RUN... --data FILE`: metrics of saved runs on labelled data, side by side."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..options import EvalOptions, LoadOptions
from .flags import add_model_flags, from_args

HELP = "metrics of saved runs on a labelled file"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("evaluate", help=HELP)
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", help="the --output-dir of a training run (or an export); more runs are "
        "scored on the same data, side by side (NAME=PATH names one; runs on one base model share its weights)",
    )  # fmt: skip
    parser.add_argument(
        "--data",
        required=True,
        help="labelled CSV/TSV/JSON/JSONL/Parquet file, folder of split files, aclImdb folder or hub dataset",
    )
    add_model_flags(parser, EvalOptions)
    add_model_flags(parser, LoadOptions)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def check(args: argparse.Namespace) -> tuple[EvalOptions, LoadOptions]:
    from ..data.loading import check_source
    from ..opening import check_openable
    from ..runs.run import parse_named_runs

    options: EvalOptions = from_args(args, EvalOptions)
    load: LoadOptions = from_args(args, LoadOptions)
    check_source(args.data, "--data")
    for path in parse_named_runs(args.runs).values():
        check_openable(path)
    return options, load


def run(args: argparse.Namespace, settings: tuple[EvalOptions, LoadOptions]) -> int:
    from ..inference.evaluation import labelled_rows, score_rows, scored_rows
    from ..opening import open_predictor, records
    from ..runs.run import parse_named_runs

    options, load = settings
    runs = parse_named_runs(args.runs)
    # The data first, read for each run's labels: a bad file fails before any model loads (or is compiled).
    rows = {name: _rows_for(name, runs, lambda path: labelled_rows(args.data, options, *records(path)))
            for name in runs}  # fmt: skip
    if len(runs) > 1:
        # A missing or damaged run: one line. An export among runs is opened alone (opening.SideBySide).
        models = open_predictor(runs, load, expected_texts=len(next(iter(rows.values())).dataset))
        scored = {name: scored_rows(models[name], rows[name], options) for name in runs}
        return _side_by_side(scored, {name: (models[name].space, rows[name]) for name in runs}, args.json)
    ((name, path),) = runs.items()
    predictor = open_predictor(path, load, expected_texts=len(rows[name].dataset))
    metrics = score_rows(predictor, rows[name], options)
    if args.json:
        print(json.dumps(metrics))
        return 0
    from ..problems.intervals import with_interval
    from ..runs.seen import seen_lines
    from ..runs.summary import per_label_lines

    intervals, first = metrics.get("intervals") or {}, predictor.space.problem.headline_of(metrics)
    for key in [*(key for key in first if key in metrics), *(key for key in metrics if key not in first)]:
        value = metrics[key]  # the headline first (skewed: macro-F1)
        if key not in ("per_label", "intervals", "calibration", "abstention", "seen"):
            shown = with_interval(value, intervals.get(key)) if isinstance(value, float) else value
            print(f"{key:>16}: {shown}")
    if intervals:
        print("(95 % intervals: bootstrap over the texts)")
    quality = metrics.get("calibration")
    if quality and "ece" in quality:
        state = "calibrated" if quality["calibrated"] else "not calibrated"
        print(
            f"Probabilities ({state}): ECE {quality['ece']:.4f}, Brier {quality['brier']:.4f}, NLL {quality['nll']:.4f}"
        )
    elif quality:
        print(
            f"Intervals: held {quality['coverage']:.1%} of true values (fitted for {quality['coverage_nominal']:.0%})"
        )
    selective = metrics.get("abstention")
    if selective:
        given = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in selective.items())
        print(f"Abstention: {given}")
    print(per_label_lines(metrics, predictor.space))
    for line in seen_lines(metrics.get("seen")):
        print(line)
    return 0


def _rows_for(name: str, runs: dict[str, str], read: Any) -> Any:
    """The file read for one run's labels; among several runs, an error says which run could not read it (a
    multi-label run beside a single-label one reads the same file differently)."""
    from ..errors import UserError

    try:
        return read(runs[name])
    except UserError as exc:
        if len(runs) > 1:
            raise UserError(f"run {name}: {exc}") from None
        raise


def _side_by_side(
    scored: dict[str, tuple[dict[str, Any], Any]], read: dict[str, tuple[Any, Any]], as_json: bool
) -> int:
    """One row of metrics per run (JSON: one object per run, by name), and each run against the first on the
    same texts (paired bootstrap), where both read the file's labels the same way."""
    import numpy as np

    from ..problems.intervals import comparison_text, paired_comparison

    results = {name: metrics for name, (metrics, _) in scored.items()}
    first, *others = scored
    (first_space, first_rows), first_scores = read[first], scored[first][1]
    labels = np.asarray(first_rows.dataset["label"])
    comparisons = {}
    for name in others:
        space, rows = read[name]
        if space.names == first_space.names and np.array_equal(np.asarray(rows.dataset["label"]), labels):
            comparisons[name] = paired_comparison(space, labels, scored[name][1], first_scores, first_space)
            results[name]["comparison_with_" + first] = comparisons[name]
    if as_json:
        print(json.dumps(results))
        return 0
    from ..runs.seen import seen_lines

    lead = first_space.problem.headline_of(results[first])  # first in the row (skewed: macro-F1)
    order = [*lead, *(k for k in results[first] if k not in lead)]
    shown = [k for k in order if isinstance(results[first].get(k), float)]
    width = max(8, *(len(name) for name in results))
    print(f"{'run':<{width}} " + " ".join(f"{k:>12}" for k in shown))
    for name, metrics in results.items():
        print(f"{name:<{width}} " + " ".join(f"{metrics.get(k, float('nan')):>12.4f}" for k in shown))
    for name, comparison in comparisons.items():
        if comparison:
            print(comparison_text(comparison, name, first))
    for name, metrics in results.items():
        for line in seen_lines(metrics.get("seen"), name):
            print(line)
    return 0
