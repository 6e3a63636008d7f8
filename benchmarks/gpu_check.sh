#!/usr/bin/env bash
# Chat SFT on a CUDA GPU: model FLOP utilisation of full fine-tuning of builtin:smollm2-135m-instruct at >= 16k
# tokens per micro-batch (256 support-chat conversations of ~70 tokens packed into one row), bf16, flash-attention 2
# and Liger where the `gpu` extra is installed. Target (issue 21): >= 0.30 of the measured bf16 matmul peak.
#
#     bash benchmarks/gpu_check.sh            # from the repository root, with the project's venv active or in .venv
#
# Without a GPU it stops at once, saying so; nothing in CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none); run it on a CUDA machine" >&2
  exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: torch does not see the GPU (a CPU-only torch build?); install a CUDA torch" >&2
  exit 2
fi
nvidia-smi -L
"$PY" - <<'PY'
import importlib.util
for name in ("flash_attn", "liger_kernel", "bitsandbytes"):
    print(f"{name}: {'installed' if importlib.util.find_spec(name) else 'missing (pip install tunesmith[gpu])'}")
PY
HF_HUB_OFFLINE=1 exec "$PY" benchmarks/train_efficiency.py --cuda --configs bf16_full,bf16_lora --batch 256 \
  --steps 6 --out benchmarks/results/gpu_check.json
