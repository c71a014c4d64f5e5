#!/usr/bin/env bash
# Lint, format check and the whole test suite. Uses ./.venv when present, else the current python.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${HF_MIM_VENV:-.venv}/bin/python"
[ -x "$py" ] || py=python3
"$py" -m ruff check .
"$py" -m ruff format --check .
"$py" -m pytest -q "$@"
