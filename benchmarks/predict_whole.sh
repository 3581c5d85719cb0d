#!/usr/bin/env bash
# `predict RUN --input` as whole commands, one after another on one machine: the tutorial's prediction script,
# `--engine torch`, and the default (`--engine auto`) on its first call (which compiles the run) and two later ones.
#
#   bash benchmarks/predict_whole.sh RUN MODEL_DIR_OR_ID REVIEWS.csv [MAX_LENGTH]
#   ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI bash benchmarks/predict_whole.sh ...   # a class without bf16 units
#
# REVIEWS.csv: a `text` column (e.g. the shared sample's train.parquet written as CSV: 2,000 reviews).
set -euo pipefail
RUN=$1 BASE=$2 IN=$3 MAX_LENGTH=${4:-256}
OUT=$(mktemp -d)
rm -rf "$RUN/.compiled"
python -c "from lora_sentiment.modeling.cpu import this_cpu; print(this_cpu().describe())"
measure() {
  local name=$1; shift
  local start end
  start=$(date +%s.%N); "$@" >/dev/null 2>"$OUT/$name.err"; end=$(date +%s.%N)
  echo "$name $(echo "$end - $start" | bc) s"
}
measure tutorial python -m lora_sentiment.bench.tutorial "$RUN" "$BASE" "$IN" "$OUT/tutorial.csv" "$MAX_LENGTH"
measure torch lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/torch.csv" --engine torch
measure default-first lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv"
measure default-later lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv" --overwrite
measure default-later lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv" --overwrite
rm -rf "$OUT"
