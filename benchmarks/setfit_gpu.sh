#!/usr/bin/env bash
# SetFit at the sizes the 2-core CPU cannot train it (benchmarks/small_data.py --methods setfit), on a lent GPU
# machine; see docs/benchmarks/small-data.md. One process per size, side by side on the one GPU (each is bound by
# kernel launches, not by the GPU's arithmetic). Expects, beside the checkout (ignored by git, carried there):
# - .whl/: wheels for the machine's Python (3.12) of what its image lacks: setfit, datasets, evaluate, dill,
#   multiprocess, sentence-transformers, pydantic, pydantic_core, annotated_types, typing_inspection
#   (`pip download --no-deps --only-binary=:all: --python-version 3.12 ...`, versions as in this venv);
# - .device/data/{train,validation}.parquet: the shared IMDB sample;
# - .device/minilm/: all-MiniLM-L6-v2's folder with model.safetensors' float tensors stored in fp16 (the carry
#   limit is 64 MiB), put back to fp32 here before anything loads them.
# Writes one JSONL file and one log per size to $OUT.
#
#   bash benchmarks/setfit_gpu.sh [MAX_STEPS] [SIZE...]
#   SEEDS="2" bash benchmarks/setfit_gpu.sh 2064 128   # only some draws
set -euo pipefail
MAX_STEPS=${1:-2064}; shift || true
SIZES=${*:-128 512 980}
OUT=${OUT:-/tmp/setfit-gpu}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'EOF'
import shutil, torch, transformers, sentence_transformers, setfit, datasets, pyarrow
from safetensors.torch import load_file, save_file
print("torch", torch.__version__, "transformers", transformers.__version__, "sentence-transformers",
      sentence_transformers.__version__, "setfit", setfit.__version__, "datasets", datasets.__version__,
      "pyarrow", pyarrow.__version__)
shutil.copytree(".device/minilm", "/tmp/minilm", dirs_exist_ok=True)
weights = load_file(".device/minilm/model.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()}, "/tmp/minilm/model.safetensors",
          metadata={"format": "pt"})
EOF
for size in $SIZES; do
  python3 benchmarks/small_data.py --model /tmp/minilm --data .device/data --per-class "$size" --methods setfit \
    --seeds ${SEEDS:-0 1 2} --setfit-max-steps "$MAX_STEPS" --output "$OUT/setfit-$size.jsonl" > "$OUT/setfit-$size.log" 2>&1 &
done
wait
tail -n 3 "$OUT"/*.log
