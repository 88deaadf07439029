#!/usr/bin/env bash
# GPU readiness check: CUDA parity vs CPU on a fixture case, bf16 + SDPA/flash attention, one training step of each
# objective under DDP (torchrun), FSDP2 and DeepSpeed ZeRO-2/3 (if installed) on one GPU, and throughput + MFU of
# 4DS-B inference and SimpleMAE training next to transformers' VideoMAE. Under 8 minutes on one H100.
#
#   scripts/gpu_check.sh                    # --device cuda (default)
#   scripts/gpu_check.sh --device cpu       # tiny smoke version of every step (CI)
#   scripts/gpu_check.sh --json out.json    # any other flag goes to benchmarks/gpu_check.py
#
# Exit status 0 when every step passed or was skipped (a skipped step prints why), 1 when one failed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec "$PYTHON" benchmarks/gpu_check.py "$@"
