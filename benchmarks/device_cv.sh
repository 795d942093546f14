#!/usr/bin/env bash
# Cross-validation of the fine-tuning recipes on a GPU machine (see benchmarks/cv_*.py).
# Needs: .whl/ (PyStemmer wheel) and .devcarry/minilm (MiniLM with fp16 weights, which
# must travel under 64 MiB); writes into $OUT.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
python3 - <<'PY' || exit 1
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".devcarry/minilm"), Path("/tmp/minilm")
shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.fp16.*"))
weights = load_file(src / "model.fp16.safetensors")
save_file({k: v.float() for k, v in weights.items()}, dst / "model.safetensors")
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout "${CE_SECONDS:-380}" python3 benchmarks/cv_cross_encoder.py --workers "${CE_WORKERS:-6}" \
  --device cuda --base-model /tmp/minilm --out "$OUT/cv_cross_encoder.json" \
  2>&1 | grep -v -i warn | tee "$OUT/cv_cross_encoder.log"
timeout "${BI_SECONDS:-150}" python3 benchmarks/cv_bi_encoder.py --workers 5 \
  --base-model /tmp/minilm --epochs "${BI_EPOCHS:-3}" --out "$OUT/cv_bi_encoder.json" \
  2>&1 | grep -v -i warn | tee "$OUT/cv_bi_encoder.log"
