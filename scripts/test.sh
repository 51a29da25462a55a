#!/usr/bin/env bash
# Command 2: set everything up, then the whole test suite (CPU; GPU tests skip with a reason).
# Extra arguments go to pytest (e.g. tests/test_kv_cache.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec "$PY" -m pytest -q -p no:cacheprovider tests "$@"
