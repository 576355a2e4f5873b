#!/usr/bin/env bash
# The project's one test command: makes a virtual environment if there is none, installs the
# project with its test extras, then runs ruff, mypy (strict) and pytest. Extra arguments go to
# pytest (e.g. ./test.sh -k nonce).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# Reinstall only when the project's metadata changed since the last install.
stamp="$VENV/.copytrader-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -e '.[test]'
    touch "$stamp"
fi

echo "== ruff"
"$PY" -m ruff check src tests benchmarks
echo "== mypy"
"$PY" -m mypy
echo "== pytest"
"$PY" -m pytest "$@"
