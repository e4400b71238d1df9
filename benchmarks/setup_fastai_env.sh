#!/usr/bin/env bash
# Create the environment the comparison benchmarks run in: fastai 2.8.12 and deepfit on one torch.
#
#   bash benchmarks/setup_fastai_env.sh            # venv in benchmarks/.fastai-venv
#   FASTAI_VENV=/somewhere/venv bash benchmarks/setup_fastai_env.sh
#   PYTHON=python3.11 bash benchmarks/setup_fastai_env.sh
#
# Then run a benchmark with that interpreter, e.g.
#   benchmarks/.fastai-venv/bin/python benchmarks/collab_ml100k.py
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FASTAI_VENV:-$REPO/benchmarks/.fastai-venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
# fastai pins and the torch / torchvision pair it is benchmarked on (one torch for both libraries)
"$VENV/bin/python" -m pip install "torch==2.14.1" "torchvision==0.29.1" "fastai==2.8.12"
# deepfit from this checkout, without letting pip change the torch just installed; its other
# dependencies (numpy, pandas, matplotlib, tqdm, pillow, scikit-learn) come with fastai, and
# safetensors and tqdm are added explicitly
"$VENV/bin/python" -m pip install safetensors tqdm
"$VENV/bin/python" -m pip install -e "$REPO" --no-deps
"$VENV/bin/python" -c "import torch, fastai, deepfit; print('torch', torch.__version__, '| fastai', fastai.__version__, '| deepfit', deepfit.__version__)"
echo "ready: $VENV/bin/python benchmarks/<benchmark>.py"
