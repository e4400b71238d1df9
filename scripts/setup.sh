#!/usr/bin/env bash
# Set up deepfit on a fresh machine: a virtual environment in .venv with the CPU build of PyTorch
# (pinned, from local wheels where the machine has them) and deepfit itself with its test extras.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  # The pinned CPU build first: a bare `torch` requirement would pull a multi-GB CUDA build.
  "$VPY" -m pip install -q "torch==${DEEPFIT_TORCH:-2.13.0}" numpy 2>&1 | grep -v "is ignored: it is neither" || true
  "$VPY" -c "import torch" || { echo "setup: installing torch failed" >&2; exit 1; }
fi
"$VPY" -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored: it is neither" || true
"$VPY" -c "import deepfit, pytest" || { echo "setup: installing deepfit failed" >&2; exit 1; }
echo "setup: ready ($("$VPY" -c 'import torch, deepfit; print("deepfit", deepfit.__version__, "torch", torch.__version__)'))"
