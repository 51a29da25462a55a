#!/usr/bin/env bash
# Command 2: set everything up, the linter (ruff, configured in pyproject.toml), then the whole test suite (CPU; GPU tests skip with a reason).
# Extra arguments go to pytest (e.g. tests/engine/kv_cache -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh   # Debian's Chromium for the viewer's browser tests
source scripts/env.sh
"$PY" -m ruff check --quiet . || { echo "test: ruff found the problems above (fix them, or run: $PY -m ruff check --fix .)" >&2; exit 1; }
exec "$PY" -m pytest -q -p no:cacheprovider --durations=25 tests "$@"
