#!/usr/bin/env bash
# GPU checks for a machine with a real NVIDIA GPU (none were run on one yet: see docs/performance.md).
#
#   bash bench/gpu_check.sh                    # inventory (NVML vs nvidia-smi), the card ledger
#   IMAGE=debian:bookworm-slim bash bench/gpu_check.sh        # + a container on one card by UUID
#   CUDA_IMAGE=... CUDA_HOLD_CMD='python3 hold.py' bash bench/gpu_check.sh   # + freeze/thaw holding GPU memory
#
# Read-only towards the cards: queries, containers, a freeze; never MIG changes, resets, clocks or power limits.
# Bounded: each run stops after GPU_CHECK_TIMEOUT seconds (default 300). Runs without Docker (inventory and
# ledger only) and prints what it could not check. Exit 1 if a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec timeout --kill-after=10 "${GPU_CHECK_TIMEOUT:-300}" "$PY" bench/gpu_check.py
