#!/usr/bin/env bash
# Run every GPU check on a machine with CUDA GPUs, in one go, and print one line per check.
# The machine needs the project (this tree) and Python with torch and Lightning; what else
# the checks import is installed offline from .gpu_wheels/ (see scripts/pack_gpu_wheels.sh),
# or taken from .venv when this tree has one.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  || echo "no nvidia-smi"
$PY -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs: {torch.cuda.device_count()}')"

if ! $PY -c "import ray, sklearn, pytest_timeout" 2>/dev/null; then
  echo "== installing Ray and the test dependencies from .gpu_wheels (offline)"
  wheels=$(mktemp -d)
  find .gpu_wheels -name '*.whl' -exec cp {} "$wheels" \;
  for first in $(find .gpu_wheels -name '*.whl.part-aa'); do
    name=$(basename "${first%.part-aa}")
    cat $(find .gpu_wheels -name "$name.part-*" | sort) > "$wheels/$name"
  done
  $PY -m pip install --quiet --no-index --find-links "$wheels" "ray[tune]" scikit-learn pytest \
    pytest-timeout psutil || { echo "FAIL install: the wheels in .gpu_wheels are incomplete"; exit 1; }
fi
$PY -c "import horovod.torch as hvd; print('Horovod', 'with CUDA' if hvd.cuda_built() else \
  'built without CUDA: its GPU check is skipped')" 2>/dev/null || echo "Horovod not installed: its GPU check is skipped"

echo "== GPU checks"
report=$(mktemp)
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" $PY -m pytest -m gpu -p no:cacheprovider -v -rs \
  --timeout=300 tests/integration/test_gpu.py > "$report" 2>&1
status=$?
# one line per check: its outcome and name (and why, for a skip)
grep -E "::test_[a-z0-9_]+ (PASSED|FAILED|ERROR|SKIPPED)" "$report" \
  | sed -E 's/^.*::(test_[a-z0-9_]+) ([A-Z]+).*$/\2 \1/'
grep -E "^SKIPPED" "$report" | sed -E 's/^SKIPPED \[[0-9]+\] [^:]+:[0-9]+: /  skipped because: /' | sort -u
tail -1 "$report"
[ $status -ne 0 ] && [ $status -ne 5 ] && { echo "== failures"; grep -E "^E " "$report" | head -40; }
exit $status
