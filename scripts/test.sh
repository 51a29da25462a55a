#!/usr/bin/env bash
# Command 2: set everything up, then the whole test suite (CPU; GPU tests skip with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ${PYTHON:-python3} -m pytest -q -p no:cacheprovider tests "$@"
