#!/usr/bin/env bash
# `predict RUN --input` as whole commands, one after another on one machine: the tutorial's prediction script,
# `--engine torch`, the default (`--engine auto`) on its first call and four later ones, and the run's OpenVINO
# int8 export (the export's own time printed apart), and `--engine openvino` forced. Where auto picks OpenVINO, the
# call that brings the run's counted texts to 4,000 compiles it (the second, with 2,000 reviews: a CSV's rows are
# counted before the job since 2026-12-04; the third before that), and on a CPU with int8 units (not amx) the call
# that brings the compiled model's own count to 4,000 checks int8.
#
#   bash benchmarks/predict_whole.sh RUN MODEL_DIR_OR_ID REVIEWS.csv [MAX_LENGTH]
#   ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI bash benchmarks/predict_whole.sh ...   # a class without bf16 units
#
# REVIEWS.csv: a `text` column (e.g. the shared sample's train.parquet written as CSV: 2,000 reviews).
set -euo pipefail
RUN=$1 BASE=$2 IN=$3 MAX_LENGTH=${4:-256}
OUT=$(mktemp -d)
rm -rf "$RUN/.compiled"
source "$(dirname "$0")/whole_commands.sh"
describe_cpu
measure tutorial python -m lora_sentiment.bench.tutorial "$RUN" "$BASE" "$IN" "$OUT/tutorial.csv" "$MAX_LENGTH"
measure torch lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/torch.csv" --engine torch
measure default-first lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv"
for call in 2 3 4 5; do
  measure "default-call-$call" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv" --overwrite
  grep -h "int8" "$OUT/default-call-$call.err" | cut -c1-160 || true
done
for call in 1 2 3; do
  measure "openvino-call-$call" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/openvino.csv" --overwrite \
    --engine openvino
done
measure export-int8 lora-sentiment export "$RUN" "$OUT/int8" --format openvino --quantize int8
measure int8-export lora-sentiment predict "$OUT/int8" --input "$IN" --output "$OUT/int8.csv"
python - "$OUT" <<'PY'
import sys
import pandas as pd
out = sys.argv[1]
torch = pd.read_csv(f"{out}/torch.csv")["predicted_label"]
for name in ("tutorial", "default", "openvino", "int8"):
    other = pd.read_csv(f"{out}/{name}.csv")["predicted_label"]
    print(f"labels equal to --engine torch's: {name} {(other == torch).mean():.4f}")
PY
rm -rf "$OUT"
