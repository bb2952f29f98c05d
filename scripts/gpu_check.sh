#!/usr/bin/env bash
# One-shot check of the captured step and the fleet on a CUDA machine, from the
# repository root:  bash scripts/gpu_check.sh
# Installs the package (no dependencies: torch with CUDA must already be there), runs
# the GPU tests (the captured step equal to the eager one over whole experiences, no
# host synchronisation per step under torch.cuda.set_sync_debug_mode("error"), a
# captured fleet's run folders resumed run by run, and a fleet of every fleet method on
# the GPU equal to its single runs), then times the paper protocol's methods eager,
# captured, as a fleet and as a captured fleet (scripts/benchmark_gpu.py --protocol);
# that table is printed last. Ends within about 9 minutes.
# Environment: PYTHON (default python), OUT (a folder for protocol_gpu.json; default
# /tmp), BENCH_ARGS (extra benchmark options, e.g. "--repeats 3 --experiences 5").
set -u
PY="${PYTHON:-python}"
OUT_DIR="${OUT:-/tmp}"
cd "$(dirname "$0")/.." || exit 2

echo "== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$PY" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 3)' \
  || { echo "CUDA is not available to $PY: nothing to check"; exit 3; }

echo "== install"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, even if pip cannot install
"$PY" -m pip install --no-deps --no-build-isolation -q -e . \
  || echo "pip install failed: using PYTHONPATH=$PWD instead"

echo "== GPU tests (captured step, fleets on the GPU, captured fleet folders and resume)"
"$PY" -m pytest --version >/dev/null 2>&1 || "$PY" -m pip install -q pytest \
  || echo "pytest is not available: tests cannot run"
timeout 200 "$PY" -m pytest -p no:cacheprovider -x -q -rs tests/core/test_captured_step.py \
  tests/runs/test_fleet_run.py tests/fleet/test_fleet_methods.py -k "cuda or captured or graph" \
  2>&1 | tail -20
tests_rc=${PIPESTATUS[0]}
echo "GPU tests exit status $tests_rc"

echo "== protocol timing (5 seeds x every method: eager, captured, fleet, captured fleet)"
# shellcheck disable=SC2086
timeout 300 "$PY" scripts/benchmark_gpu.py --protocol --device cuda --repeats 1 \
  --experiences 3 --train-patterns 2000 --json "$OUT_DIR/protocol_gpu.json" ${BENCH_ARGS:-}
bench_rc=$?
exit $(( tests_rc != 0 || bench_rc != 0 ))
