# Sourced by the scripts in this folder: picks the Python that ttscale is installed into and run with, as $PY.
#   1. $PYTHON, if set (any interpreter: a conda env, a system Python you manage yourself);
#   2. else the active virtual environment ($VIRTUAL_ENV);
#   3. else the project's own .venv, created on first use, so the pinned versions never touch a global Python.
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  PY=$VIRTUAL_ENV/bin/python
else
  if [ ! -x .venv/bin/python ]; then
    echo "ttscale: creating a virtual environment in $(pwd)/.venv (activate another one, or set PYTHON, to install elsewhere)" >&2
    python3 -m venv .venv
  fi
  PY=$(pwd)/.venv/bin/python
fi
export PY
if ! "$PY" -c "import sys; sys.exit(sys.version_info < (3, 10))" 2>/dev/null; then
  echo "ttscale: $PY is not a Python 3.10 or newer interpreter; set PYTHON to one (or activate a virtual environment made with one)" >&2
  exit 1
fi
