#!/usr/bin/env bash
# Runs the tests that touch transformers' internals (KV cache, search, PRM scoring, budget forcing) against each
# given transformers release, each in its own throwaway virtual environment, and prints a table.
#     bash scripts/compat.sh 5.21.0 5.24.0           # transformers' floor and the newest release tested
#     bash scripts/compat.sh --all 5.25.0            # the whole suite against a release newer than setup.py allows
#     bash scripts/compat.sh --all --floor           # the whole suite with every core dependency at its floor
# Everything else comes from constraints.txt; transformers (and whatever it needs, e.g. tokenizers) is installed
# on top, so a release outside setup.py's range can be tried (pip then warns that ttscale asks for another range).
# Logs: $TTSCALE_COMPAT_DIR (default /tmp/ttscale-compat)/<version>.log
set -uo pipefail
cd "$(dirname "$0")/.."
INTERNALS=(tests/engine/kv_cache tests/engine/search/test_prm.py
           tests/engine/search/test_searcher.py tests/engine/logits tests/engine/test_engine_e2e.py)
TESTS=("${INTERNALS[@]}")
if [ "${1:-}" = "--all" ]; then TESTS=(tests); shift; fi
FLOOR=0
if [ "${1:-}" = "--floor" ]; then FLOOR=1; shift; fi
if [ $FLOOR = 0 ] && [ $# -eq 0 ]; then
  echo "usage: bash scripts/compat.sh [--all] TRANSFORMERS_VERSION...   (e.g. 5.21.0 5.24.0)" >&2
  echo "       bash scripts/compat.sh [--all] --floor                  (every core dependency at setup.py's floor)" >&2
  exit 2
fi
# --floor: one row, every ">=" of setup.py's INSTALL_REQUIRES pinned to "==" (the rest resolves to today's releases).
FLOORS=""
if [ $FLOOR = 1 ]; then
  FLOORS=$(python3 - <<'PY'
import ast, re
tree = ast.parse(open("setup.py").read())
reqs = next(ast.literal_eval(n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "INSTALL_REQUIRES" for t in n.targets))
print(" ".join(f"{m[1]}=={m[2]}" for m in (re.match(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", r) for r in reqs) if m))
PY
)
  set -- floor
fi
for v in "$@"; do
  [ "$v" = floor ] && continue
  if ! [[ $v =~ ^[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?$ ]]; then
    echo "compat: '$v' is not a release number; give versions like 5.24.0" >&2
    exit 2
  fi
done
LOGS=${TTSCALE_COMPAT_DIR:-/tmp/ttscale-compat}
mkdir -p "$LOGS"
ROWS=()
for v in "$@"; do
  VENV=$(mktemp -d "${TMPDIR:-/tmp}/ttscale-compat-venv.XXXXXX")
  LOG=$LOGS/$v.log
  t0=$(date +%s)
  echo "compat: transformers $v in $VENV (log $LOG)" >&2
  {
    python3 -m venv "$VENV" &&
    PYTHON=$VENV/bin/python bash scripts/setup.sh &&
    if [ "$v" = floor ]; then
      "$VENV/bin/python" -m pip install -q $FLOORS
    else
      "$VENV/bin/python" -m pip install -q "transformers==$v"
    fi
  } > "$LOG" 2>&1
  installed=$?
  [ "$v" = floor ] && echo "compat: floors $FLOORS" | tee -a "$LOG" >&2
  if [ $installed -ne 0 ]; then
    ROWS+=("| $v | - | install failed (see log) | | | $(( $(date +%s) - t0 )) s |")
  else
    tok=$("$VENV/bin/python" -c "from importlib.metadata import version as v; print(v('tokenizers'), v('huggingface-hub'), sep=' / ')")
    label=$v; [ "$v" = floor ] && label="floor: $FLOORS"
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" >> "$LOG" 2>&1
    rc=$?
    summary=$(grep -E '^[=]* ?[0-9]+ (passed|failed|error)' "$LOG" | tail -1 | sed 's/=//g; s/^ *//; s/ in [0-9.]*s.*//')
    count() { local n; n=$(grep -oE "[0-9]+ $1" <<<"$summary" | head -1 | cut -d' ' -f1); echo "${n:-0}"; }
    p=$(count passed); f=$(( $(count failed) + $(count 'errors?') )); s=$(count skipped)
    ROWS+=("| $label | $tok | $([ $rc -eq 0 ] && echo green || echo "RED (rc $rc)") | ${p:-0} / ${f:-0} / ${s:-0} | $(( $(date +%s) - t0 )) s |")
  fi
  rm -rf "$VENV"
done
echo
echo "| transformers | tokenizers / huggingface-hub | result | passed / failed / skipped | time |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
for r in "${ROWS[@]}"; do [[ $r == *green* ]] || exit 1; done
