#!/usr/bin/env bash
# Command 1: set everything up, then budget-forced generation on the embedded model (SmolLM2-135M-Instruct).
# Extra arguments are passed to `ttscale generate` (e.g. --json, --trace trace.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec "$PY" -m engine.cli generate "How many r's are in the word strawberry?" \
  --format think-tags --system "Think step by step before answering." \
  --min-thinking-tokens 64 --max-thinking-tokens 160 --max-answer-tokens 48 \
  --temperature 0.7 --top-p 0.95 --seed 1 "$@"
