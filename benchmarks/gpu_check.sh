#!/usr/bin/env bash
# The GPU check in one command, on a machine with an NVIDIA GPU:
#
#   bash benchmarks/gpu_check.sh [DEVICE] [bench_gpu.py options]     DEVICE defaults to gpu:0
#
# 1. a venv (.gpu-venv) with jax[cuda12], Keras 3 and TensorLab's runtime packages; TensorFlow stays out,
#    so Keras runs on JAX. WHEELS=DIR installs from wheels in DIR instead of the package index;
# 2. the managed server: FerretDB built with Go, or TENSORLAB_SERVER_BIN=/path/to/ferretdb|mongod,
#    or an existing server in TENSORLAB_MONGODB_URI;
# 3. benchmarks/bench_gpu.py on DEVICE: plain fit vs DBLogger (MLP and CNN, batch 128 and 1024),
#    stream-fed vs in-memory fit, a worker training 8 queued jobs, a %%tdb_train cell in a real kernel;
#    figures printed and written to benchmarks/results/gpu-<device name>.json;
# 4. the backend tests on that machine (tests/test_backends.py).
#
# For a GPU machine without a package index, fetch the wheels on one that has one, carry DIR along:
#   bash benchmarks/gpu_check.sh --download-wheels DIR      (CPython 3.12, manylinux x86_64)
# A dry run of the whole path on a CPU: JAX_SPEC='jax[cpu]' bash benchmarks/gpu_check.sh cpu --quick
set -euo pipefail
cd "$(dirname "$0")/.."

JAX_SPEC="${JAX_SPEC:-jax[cuda12]}"
RUNTIME=(setuptools wheel "pymongo>=4.6" "lz4>=4.0" "numpy>=1.24" "keras>=3.11" "ipython>=8.0" "ipywidgets>=8.0"
         "pandas>=2.0" "scikit-learn>=1.3" "tqdm>=4.66" "matplotlib>=3.7" "mongomock>=4.1" "nbclient>=0.10"
         "nbformat>=5.9" "ipykernel>=6.29" "pytest>=8" "pytest-timeout>=2.2")

if [ "${1:-}" = "--download-wheels" ]; then
  dir="${2:?--download-wheels needs a folder}"
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$dir" "$JAX_SPEC" "${RUNTIME[@]}"
  echo "Wheels in $dir; on the GPU machine: WHEELS=$dir bash benchmarks/gpu_check.sh"
  exit 0
fi

DEVICE="${1:-gpu:0}"
shift || true
VENV="${GPU_VENV:-.gpu-venv}"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export TENSORLAB_HOME="${TENSORLAB_HOME:-$PWD/.gpu-home}"

echo "== 1/4 environment: $VENV with $JAX_SPEC and Keras 3 (no TensorFlow)"
python3 -m venv "$VENV"
pip_install() {
  if [ -n "${WHEELS:-}" ]; then "$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" "$@"
  else "$VENV/bin/python" -m pip install -q "$@"; fi
}
pip_install "$JAX_SPEC" "${RUNTIME[@]}"
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__)"

echo "== 2/4 server"
if [ -z "${TENSORLAB_MONGODB_URI:-}" ]; then
  if [ -z "${TENSORLAB_SERVER_BIN:-}" ]; then "$VENV/bin/tensorlab" server install; fi
  "$VENV/bin/tensorlab" server start
  trap '"$VENV/bin/tensorlab" server stop' EXIT
fi

echo "== 3/4 benchmarks on $DEVICE"
"$VENV/bin/python" benchmarks/bench_gpu.py --device "$DEVICE" "$@"

echo "== 4/4 backend tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_backends.py
