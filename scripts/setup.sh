#!/usr/bin/env bash
# Create .venv (if needed) and install rep4d with its test dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
# torch/torchvision come from PyPI (the default wheels run on CPU); transformers' video processors need torchvision.
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/python -c "import rep4d, torch, torchvision, transformers; print('rep4d', rep4d.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
