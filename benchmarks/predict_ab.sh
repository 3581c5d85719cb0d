#!/usr/bin/env bash
# Whole `predict --input` commands of two versions of the code, interleaved round by round, with the tutorial's way
# before and after: for a change to the prediction path, measured side by side on one machine. BEFORE: a checkout
# of the older code (e.g. `git worktree add /tmp/before HEAD~1`), put first on PYTHONPATH for its calls; the
# installed package answers the others. Both must write the same predictions (checked at the end).
#
#   bash benchmarks/predict_ab.sh BEFORE RUN MODEL_DIR_OR_ID REVIEWS.csv [ROUNDS] [EXPORT]
#
# EXPORT: an export folder (e.g. `export --quantize int8`) predicted by both versions in each round too.
set -euo pipefail
BEFORE=$1 RUN=$2 BASE=$3 IN=$4 ROUNDS=${5:-3} EXPORT=${6:-}
OUT=$(mktemp -d)
source "$(dirname "$0")/whole_commands.sh"
describe_cpu
timed tutorial python -m lora_sentiment.bench.tutorial "$RUN" "$BASE" "$IN" "$OUT/tutorial.csv" 256
for round in $(seq "$ROUNDS"); do
  PYTHONPATH="$BEFORE/src" timed "default-before-$round" \
    lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/before.csv" --overwrite
  timed "default-after-$round" lora-sentiment predict "$RUN" --input "$IN" --output "$OUT/after.csv" --overwrite
  if [ -n "$EXPORT" ]; then
    PYTHONPATH="$BEFORE/src" timed "export-before-$round" \
      lora-sentiment predict "$EXPORT" --input "$IN" --output "$OUT/export-before.csv" --overwrite
    timed "export-after-$round" lora-sentiment predict "$EXPORT" --input "$IN" --output "$OUT/export-after.csv" --overwrite
  fi
done
cmp -s "$OUT/before.csv" "$OUT/after.csv" && echo "default: the same predictions" || echo "default: predictions DIFFER"
if [ -n "$EXPORT" ]; then
  cmp -s "$OUT/export-before.csv" "$OUT/export-after.csv" && echo "export: the same predictions" \
    || echo "export: predictions DIFFER"
fi
timed tutorial-again python -m lora_sentiment.bench.tutorial "$RUN" "$BASE" "$IN" "$OUT/tutorial.csv" 256
rm -rf "$OUT"
