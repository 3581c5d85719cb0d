#!/usr/bin/env bash
# Whole `predict RUN --input` commands, torch against OpenVINO (the run's compiled model, built by a first call not
# timed), in interleaved rounds, with the tutorial's way before and after: for a shared machine whose speed drifts,
# each line also gives the CPU seconds (user + system) and the host's steal (vmstat's `st`) after it.
#
#   bash benchmarks/engines_interleaved.sh RUN MODEL_DIR_OR_ID REVIEWS.csv [ROUNDS] [MAX_LENGTH]
#   EXPORT=FOLDER bash benchmarks/engines_interleaved.sh ...   # an export (e.g. `--quantize int8`) in each round too
#   EXPORT="A B" ...   # several exports, each in each round (export-1-ROUND, export-2-ROUND), e.g. one written by an
#                      # older version beside today's
#   AUTO=1 bash benchmarks/engines_interleaved.sh ...   # the default (`--engine auto`: int8 where the run's check kept
#                                                       # it) in each round too; run predict_whole.sh first to check it
set -euo pipefail
RUN=$1 BASE=$2 IN=$3 ROUNDS=${4:-2} MAX_LENGTH=${5:-256}
OUT=$(mktemp -d)
source "$(dirname "$0")/whole_commands.sh"
describe_cpu
lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/warm.csv" --engine openvino >/dev/null 2>&1
timed tutorial python -m lora_sentiment.bench.tutorial "$RUN" "$BASE" "$IN" "$OUT/tutorial.csv" "$MAX_LENGTH"
for round in $(seq "$ROUNDS"); do
  timed "torch-$round" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/torch.csv" --overwrite --engine torch
  timed "openvino-$round" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/openvino.csv" --overwrite \
    --engine openvino
  if [ -n "${AUTO:-}" ]; then
    timed "default-$round" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv" --overwrite
  fi
  read -r -a exports <<< "${EXPORT:-}"
  for i in "${!exports[@]}"; do
    name=export-$round
    [ "${#exports[@]}" -gt 1 ] && name=export-$((i + 1))-$round
    timed "$name" lora-sentiment predict "${exports[$i]}" --input "$IN" --output "$OUT/export.csv" --overwrite
  done
done
timed tutorial-again python -m lora_sentiment.bench.tutorial "$RUN" "$BASE" "$IN" "$OUT/tutorial.csv" "$MAX_LENGTH"
rm -rf "$OUT"
