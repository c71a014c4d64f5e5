#!/usr/bin/env bash
# Lint, format check and the whole test suite. Uses ./.venv when present, else the current python.
#
#   HF_MIM_TEST_WORKERS  pytest processes (default 2; 0 runs in this process). Test files are kept whole on one
#                        worker (--dist loadfile), and each worker's torch uses one thread unless OMP_NUM_THREADS says
#                        otherwise, so two workers share two cores without oversubscribing them.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${HF_MIM_VENV:-.venv}/bin/python"
[ -x "$py" ] || py=python3
"$py" -m ruff check .
"$py" -m ruff format --check .
workers="${HF_MIM_TEST_WORKERS:-2}"
if [ "$workers" -gt 0 ]; then
  OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$py" -m pytest -q -n "$workers" --dist loadfile "$@"
else
  "$py" -m pytest -q "$@"
fi
