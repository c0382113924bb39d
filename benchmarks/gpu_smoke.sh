#!/usr/bin/env bash
# Every method for a few steps on the accelerator present, asserting that every model and module
# lives there and that nothing fell back to the CPU (benchmarks/gpu_smoke.py says how).
#   benchmarks/gpu_smoke.sh [MODEL]     MODEL: a 0.5-1B model directory or name (default gemma3-270m;
#                                       make models installs it). Exit 0: all on the accelerator.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-.venv/bin/python}
exec "$PYTHON" benchmarks/gpu_smoke.py --model "${1:-gemma3-270m}"
