#!/usr/bin/env bash
# The GPU check, for the lent GPU machine: python3 3.12 with JAX (CUDA) and PyTorch there, but no Keras, pymongo,
# Jupyter packages, Go or package index; a call carries at most 64 MiB of ignored paths with the working tree.
#
# Here, once (pip's index and the Go module proxy reachable):
#   bash benchmarks/gpu_check.sh --prepare [--python-version 3.12]
#     wheels of what the machine lacks + FerretDB built with TensorLab's patches, stripped, xz-compressed,
#     into .gpu-carry (gitignored); prints its size against the limit (benchmarks/gpu_carry.py).
# There, one command (device tool: carry [".gpu-carry"], timeout_s 540):
#   bash benchmarks/gpu_check.sh [DEVICE] [bench_gpu.py options]          DEVICE defaults to gpu:0
#     1. carried wheels -> pip --no-index --no-deps --target $GPU_SITE, TensorLab and FerretDB beside them;
#     2. the managed server (the carried FerretDB);
#     3. benchmarks/bench_gpu.py on Keras/JAX: plain fit vs DBLogger (MLP, CNN; batch 128, 1024), stream-fed vs
#        in-memory, a worker draining 8 jobs, a %%tdb_train --device cell through a real kernel;
#     4. the same on Keras/PyTorch (--repeats 1) if the time budget allows; 5. tests/test_backends.py if it still does.
#     Results land in benchmarks/results/gpu-<device>[-torch].json and, with the log, in $OUT when it is set.
# A dry run here, against an interpreter shaped like the machine's (jax[cpu] and its package set, no Keras):
#   bash benchmarks/gpu_check.sh --dry-venv /tmp/tensorlab-gpu-dry /root/.pyenv/versions/3.12.1/bin/python3
#   PYTHON=/tmp/tensorlab-gpu-dry/bin/python bash benchmarks/gpu_check.sh cpu --quick
# Knobs: PYTHON (python3), GPU_CARRY (.gpu-carry), GPU_SITE (/tmp/tensorlab-gpu-site), GPU_CHECK_BUDGET_S (450:
# the PyTorch run and the tests start only while there is time for them), TORCH_ARGS (--repeats 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CARRY="${GPU_CARRY:-$ROOT/.gpu-carry}"

case "${1:-}" in
  --prepare)
    shift
    exec "${PREPARE_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}" \
      benchmarks/gpu_carry.py --dir "$CARRY" prepare "$@" ;;
  --dry-venv)
    exec "${PREPARE_PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}" \
      benchmarks/gpu_carry.py --dir "$CARRY" dry-venv "${2:?--dry-venv DIR PYTHON}" --python "${3:?--dry-venv DIR PYTHON}" ;;
esac

DEVICE="${1:-gpu:0}"
shift || true
PY="${PYTHON:-python3}"
SITE="${GPU_SITE:-/tmp/tensorlab-gpu-site}"
BUDGET="${GPU_CHECK_BUDGET_S:-450}"
[ -f "$CARRY/manifest.json" ] || { echo "no $CARRY/manifest.json: run 'bash benchmarks/gpu_check.sh --prepare' first" >&2; exit 2; }
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu_check.log") 2>&1; fi

step() { echo "== [${SECONDS}s] $*"; }
finish() {
  status=$?
  if [ -n "${SERVER_STARTED:-}" ]; then (cd "$SITE/work" && "$PY" -m tensorlab.cli server stop >/dev/null 2>&1) || true; fi
  if [ -n "${OUT:-}" ] && [ -d "$ROOT/benchmarks/results" ]; then
    find "$ROOT/benchmarks/results" -maxdepth 1 -name '*.json' -newer "$SITE/started" -exec cp {} "$OUT/" \; || true
  fi
  echo "== [${SECONDS}s] done, exit $status"
}

step "1/5 environment: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])'), carried wheels and FerretDB -> $SITE"
"$PY" benchmarks/gpu_carry.py --dir "$CARRY" install --site "$SITE"
touch "$SITE/started"
trap finish EXIT
mkdir -p "$SITE/work" "$SITE/home" "$SITE/ipython"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH" PYTHONUNBUFFERED=1
export TENSORLAB_TOOLS_DIR="$SITE/tools" TENSORLAB_HOME="$SITE/home" IPYTHONDIR="$SITE/ipython"
export JUPYTER_PATH="$SITE/jupyter/share/jupyter" JUPYTER_RUNTIME_DIR="$SITE/jupyter-runtime"
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.3}"  # bench + kernel
"$PY" -m ipykernel install --prefix "$SITE/jupyter" --name python3 >/dev/null  # the kernel runs this interpreter
"$PY" benchmarks/gpu_carry.py --dir "$CARRY" check
command -v nvidia-smi >/dev/null && nvidia-smi -L || true
"$PY" -c "import jax; print('jax devices:', jax.devices())"
# Python runs from $SITE/work: the repo root's tensorlab/ (without magics/, widgets/) would shadow the installed one.
cd "$SITE/work"

step "2/5 server: the carried FerretDB"
"$PY" -c "from tensorlab.tensordb.server.ferretdb_build import installed_ferretdb as f; import sys; \
sys.exit(0 if f() else 'the carried FerretDB is not the current recipe: rerun --prepare')"
"$PY" -m tensorlab.cli server start
SERVER_STARTED=1

step "3/5 benchmarks on $DEVICE, Keras on JAX"
"$PY" "$ROOT/benchmarks/bench_gpu.py" --device "$DEVICE" "$@"

left=$((BUDGET - SECONDS))
if ! "$PY" -c "import torch" 2>/dev/null; then
  step "4/5 Keras on PyTorch: skipped, no torch in this interpreter"
elif [ "$left" -lt 120 ]; then
  step "4/5 Keras on PyTorch: skipped, ${left}s left of the ${BUDGET}s budget"
else
  step "4/5 benchmarks on $DEVICE, Keras on PyTorch (at most ${left}s)"
  # shellcheck disable=SC2086
  KERAS_BACKEND=torch timeout "$left" "$PY" "$ROOT/benchmarks/bench_gpu.py" --device "$DEVICE" ${TORCH_ARGS:---repeats 1} "$@" \
    || echo "the PyTorch run did not finish (exit $?)"
fi

left=$((BUDGET - SECONDS))
if [ "$left" -lt 60 ]; then
  step "5/5 backend tests: skipped, ${left}s left of the ${BUDGET}s budget"
else
  step "5/5 backend tests (tests/test_backends.py)"
  (cd "$ROOT" && timeout "$left" "$PY" -m pytest -q -p no:cacheprovider tests/test_backends.py) || echo "backend tests failed"
fi
