#!/usr/bin/env bash
# Installs hf_mim and its dependencies on a fresh machine.
#
#   bash scripts/install.sh            # into ./.venv, with the test tools (extra "dev")
#
# Environment:
#   HF_MIM_VENV    virtual environment to create/use (default: .venv); "none" installs into the current python
#   HF_MIM_PYTHON  interpreter that creates the environment (default: python3)
#   HF_MIM_TORCH   pip requirement for torch, installed first (default: torch==2.13.0, a CPU wheel where a local
#                  one is provided); "skip" keeps the torch already installed, e.g. a GPU machine's own build
#   HF_MIM_EXTRAS  extras of hf_mim to install (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${HF_MIM_VENV:-.venv}"
if [ "$venv" = "none" ]; then
  py="${HF_MIM_PYTHON:-python3}"
else
  if [ ! -x "$venv/bin/python" ]; then
    "${HF_MIM_PYTHON:-python3}" -m venv "$venv"
  fi
  py="$venv/bin/python"
fi

# torch goes first: a later plain "torch>=..." requirement is then already satisfied and pip does not pull
# a multi-GB CUDA build onto a CPU machine.
torch_req="${HF_MIM_TORCH:-torch==2.13.0}"
if [ "$torch_req" != "skip" ]; then
  "$py" -m pip install -q "$torch_req"
fi
"$py" -m pip install -q -e ".[${HF_MIM_EXTRAS:-dev}]"
"$py" -c "import torch, transformers, hf_mim; print(f'hf_mim {hf_mim.__version__} installed in {__import__(\"sys\").prefix} (torch {torch.__version__}, transformers {transformers.__version__})')"
