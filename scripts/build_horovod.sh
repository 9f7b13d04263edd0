#!/usr/bin/env bash
# Build Horovod for the torch in .venv (gloo controller, CPU and CUDA ops as torch allows) and
# install it there. Horovod 0.28.1, the newest release, compiles its torch extension as C++14,
# which torch 2.x headers reject; it builds once both CMakeLists ask for C++17. The wheel is
# cached outside the repository, keyed by Horovod, torch and Python versions, so the next
# set-up on this machine installs it in seconds. A failed build stops here with the
# compiler's output.
set -euo pipefail
cd "$(dirname "$0")/.."
HOROVOD_VERSION=0.28.1
PY=.venv/bin/python

if "$PY" -c "import horovod.torch" 2>/dev/null; then
  exit 0
fi
torch_version=$("$PY" -c "import torch; print(torch.__version__)")
python_tag=$("$PY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
cache="${LIGHTNING_TUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lightning-tune}"
cache="$cache/horovod-$HOROVOD_VERSION-torch-$torch_version-$python_tag"
mkdir -p "$cache"
wheel=$(ls "$cache"/horovod-*.whl 2>/dev/null | head -n 1 || true)

if [ -z "$wheel" ]; then
  echo "Building Horovod $HOROVOD_VERSION against torch $torch_version (a few minutes) ..."
  command -v cmake >/dev/null || "$PY" -m pip install --quiet "cmake>=3.13"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip download --quiet --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$work"
  tar -xzf "$work/horovod-$HOROVOD_VERSION.tar.gz" -C "$work"
  source_dir="$work/horovod-$HOROVOD_VERSION"
  for cmake_file in "$source_dir/CMakeLists.txt" "$source_dir/horovod/torch/CMakeLists.txt"; do
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$cmake_file"
    if grep -q "CMAKE_CXX_STANDARD 14" "$cmake_file"; then
      echo "Could not switch $cmake_file to C++17; Horovod's sources changed." >&2
      exit 1
    fi
  done
  HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
  HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
    "$PY" -m pip wheel --no-deps --no-build-isolation -w "$work/wheel" "$source_dir" \
    > "$work/build.log" 2>&1 || {
      echo "Horovod failed to build; the end of the build log:" >&2
      grep -n -B2 -A8 "error" "$work/build.log" | tail -n 80 >&2
      tail -n 40 "$work/build.log" >&2
      exit 1
    }
  cp "$work"/wheel/horovod-*.whl "$cache/"
  wheel=$(ls "$cache"/horovod-*.whl | head -n 1)
fi
"$PY" -m pip install --quiet "$wheel"
"$PY" -c "import horovod.torch as hvd; print('Horovod', hvd.__version__ if hasattr(hvd, '__version__') else '', 'gloo built:', hvd.gloo_built())"
