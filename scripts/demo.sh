#!/usr/bin/env bash
# Command 1: set everything up, then budget-forced generation on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ttscale generate "How many r's are in the word strawberry?" \
  --min-thinking-tokens 64 --max-thinking-tokens 160 --max-answer-tokens 48 "$@"
