"""Regression intervals with one width against bands of the predicted value, on the evaluation outputs that
`benchmarks/calibration.py --keep-predictions DIR` kept (TASK-SEED.npz: targets and the run's predicted values),
so band counts can be compared without training again. Every figure is cross-fitted as `train` reports it: each
seeded half of the evaluation texts gets the interval fitted on the other half.

    python benchmarks/calibration_bands.py /tmp/cal-preds/imdb-rating-*.npz --bands 1 3 5 \
        --output benchmarks/results/calibration-bands-offline-amx-cpu-2026-12-02.json

Per file and band count: the coverage, the mean half-width, each band's coverage (by the bands fitted on all the
texts) and, for the bands in use, what `--max-interval` W leaves answered and the MAE of those (on the texts the
bands were fitted on, as the run's risk-coverage table is).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def measure(path: Path, bands: int, coverage: float) -> dict:
    from lora_sentiment.problems import calibration
    from lora_sentiment.problems.space import LabelSpace

    kept = np.load(path)
    targets, scores = kept["targets"], kept["scores"]
    calibration.MAX_BANDS = bands
    fitted, report = calibration.calibrate(LabelSpace("regression", ["value"]), targets, scores, coverage)
    row = {"file": path.name, "bands": bands, "texts": len(targets), "coverage": report["coverage"],
           "mean_half_width": round(report["cross_fitted_half_width"], 4),
           "band_coverage": report.get("band_coverage"), "one_width_coverage": report.get("band_coverage_one_width"),
           "band_half_widths": report.get("band_half_widths")}  # fmt: skip
    width, errors = 2 * fitted.half_widths(scores[:, 0]), np.abs(targets - scores[:, 0])
    row["max_interval"] = [
        {"w": round(float(w), 3), "answered": round(float((width <= w).mean()), 3),
         "mae_answered": round(float(errors[width <= w].mean()), 4), "mae_all": round(float(errors.mean()), 4)}
        for w in sorted(set(width.round(6)))
    ]  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--bands", nargs="+", type=int, default=[1, 3, 5])
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--output")
    args = parser.parse_args()
    rows = [measure(path, bands, args.coverage) for path in args.files for bands in args.bands]
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "max_interval"}))
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
