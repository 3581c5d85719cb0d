#!/usr/bin/env bash
# The default's first calls against torch, as whole `predict RUN --input` commands one after another: what a user
# who just trained a run waits for. The compiled model is removed first; each call's stderr notes are printed
# (which call waits, which compiles, which checks int8).
#
#   bash benchmarks/first_call.sh RUN REVIEWS.csv [CALLS]
#   ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI bash benchmarks/first_call.sh ...   # a class without bf16 units
set -euo pipefail
RUN=$1 IN=$2 CALLS=${3:-3}
OUT=$(mktemp -d)
rm -rf "$RUN/.compiled"
source "$(dirname "$0")/whole_commands.sh"
describe_cpu
notes() { grep -h "note:" "$OUT/$1.err" | cut -c1-160 || true; }
measure torch lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/torch.csv" --engine torch
for call in $(seq 1 "$CALLS"); do
  measure "default-call-$call" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/default.csv" --overwrite
  notes "default-call-$call"
done
measure torch-again lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/torch.csv" --engine torch --overwrite
rm -rf "$OUT"
