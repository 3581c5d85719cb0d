#!/usr/bin/env bash
# The GPU check of `lora-sentiment bench`, as run on a lent GPU machine (see BENCHMARKS.md).
# Expects, beside the checkout: .whl/ (wheels of this project's dependencies for the machine's Python),
# .device/data/{train,validation}.parquet (the IMDB sample) and .device/tokenizer/ (an uncased WordPiece
# tokenizer, e.g. all-MiniLM-L6-v2's). Writes the JSON report to $OUT (or /tmp).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
python3 -m lora_sentiment bench --quick --shaped-only --tokenizer .device/tokenizer --data .device/data \
    --shaped-train-samples "${TRAIN_SAMPLES:-2000}" --shaped-predict-samples "${PREDICT_SAMPLES:-4000}" \
    --output "${OUT:-/tmp}/bench-gpu.json" 2>&1 | grep -v -E "it/s\]|s/it\]"
