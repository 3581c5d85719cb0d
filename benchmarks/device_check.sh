#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py), as run on a lent GPU machine; see docs/benchmarks/gpu.md.
# Expects, beside the checkout: .whl/ (wheels of this project's dependencies that the machine's image lacks,
# for its Python), .device/data/{train,validation}.parquet (the IMDB sample) and .device/minilm/
# (all-MiniLM-L6-v2; its weights saved in bf16 to fit the carry limit). Writes the JSON report to $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__)"
python3 benchmarks/gpu_check.py --minilm .device/minilm --data .device/data --output "${OUT:-/tmp}/gpu-check.json" "$@" \
    2>&1 | grep -v -E "it/s\]|s/it\]"
