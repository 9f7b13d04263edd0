#!/usr/bin/env bash
# Prepare what a GPU machine without a package index needs to run scripts/gpu_check.sh:
# the wheels of Ray and the test dependencies its image lacks (it has torch and Lightning),
# sorted into batches under .gpu_wheels/batch-N of at most 60 MiB each, because one transfer
# to that machine carries at most 64 MiB (the project's own files take ~1 MB of it). A wheel over 60 MiB (Ray's is ~79 MB) is split
# into parts (name.whl.part-aa, -ab, ...); gpu_check.sh joins them.
#
#   GPU_PYTHON=3.11 bash scripts/pack_gpu_wheels.sh   # the GPU machine's Python (default: ours)
#
# Then send batch 1 .. N-1 each with a command of its own to the same warm machine, and run
# the check with the last:  run(command="true", carry=[".gpu_wheels/batch-1"]) ...
#                           run(command="bash scripts/gpu_check.sh", carry=[".gpu_wheels/batch-N"])
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
GPU_PYTHON="${GPU_PYTHON:-$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
RAY_VERSION="$($PY -c 'import ray; print(ray.__version__)')"
LIMIT=$((60 * 1024 * 1024))
rm -rf .gpu_wheels && mkdir -p .gpu_wheels/all
# Ray and what the GPU tests import beyond torch and Lightning (no torch: the image has its own)
$PY -m pip download --quiet --only-binary=:all: --dest .gpu_wheels/all \
  --python-version "$GPU_PYTHON" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any \
  "ray[tune]==$RAY_VERSION" scikit-learn pytest pytest-timeout psutil
rm -f .gpu_wheels/all/torch-* .gpu_wheels/all/nvidia_* .gpu_wheels/all/triton-*
for wheel in .gpu_wheels/all/*.whl; do  # parts first, so every file fits one batch
  if [ "$(stat -c %s "$wheel")" -gt "$LIMIT" ]; then
    split -b "$LIMIT" "$wheel" "$wheel.part-" && rm "$wheel"
  fi
done
batch=1; used=0
mkdir -p .gpu_wheels/batch-1
for file in $(ls -S .gpu_wheels/all); do  # largest first, each into the first batch it fits
  size=$(stat -c %s ".gpu_wheels/all/$file")
  if [ "$used" -gt 0 ] && [ $((used + size)) -gt "$LIMIT" ]; then
    batch=$((batch + 1)); used=0; mkdir -p ".gpu_wheels/batch-$batch"
  fi
  mv ".gpu_wheels/all/$file" ".gpu_wheels/batch-$batch/"; used=$((used + size))
done
rmdir .gpu_wheels/all
for dir in .gpu_wheels/batch-*; do
  echo "$dir: $(ls "$dir" | wc -l) files, $(du -sm "$dir" | cut -f1) MiB"
done
