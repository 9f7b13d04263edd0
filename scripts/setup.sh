#!/usr/bin/env bash
# Make .venv in the repository root and install lightning-tune with everything it needs.
# Safe to run again: an existing .venv is reused and only what is missing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# torch first and pinned: the local CPU build. A looser spec lets pip pick a newer CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Horovod: built from source for this torch (patched, cached outside the repository)
bash scripts/build_horovod.sh
.venv/bin/python -c "import lightning_tune, ray, lightning, pytorch_lightning, torch, horovod.torch; \
print(f'lightning-tune {lightning_tune.__version__}: ray {ray.__version__}, lightning {lightning.__version__}, torch {torch.__version__}')"
