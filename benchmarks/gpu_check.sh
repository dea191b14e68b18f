#!/usr/bin/env bash
# The radiomics engine's GPU check, one prepared command for a short GPU lease (estimated 6-8 min on the
# workplace's H200, within one 600 s device call; every step has a time limit, so a slow step
# cannot eat the next ones):
#   1. the CUDA agreement tests: tests marked gpu in tests/radiomics (CPU vs CUDA within 1e-5
#      relative on a LoG + wavelet ROI and on 40 random cases per generator);
#   2. a longer randomized CPU-vs-CUDA sweep (tests/radiomics/_random_cases.py --device cuda);
#   3. benchmarks/radiomics.py on CUDA against PyRadiomics on one CPU thread in the same run
#      (the issue's >= 50x target), quick repeats, a 64-ROI batch row (the JSON is written
#      after every row: a step stopped at its limit keeps what it measured).
# Results land in $OUT (or benchmarks/results/gpu_check): the log, the sweep's output and the
# benchmark's JSON. On a machine without PyPI, build .gpu first (benchmarks/gpu_bundle.sh, here)
# and carry it; where the packages are installed (a `make install` venv) set PY=.venv/bin/python.
# A dry run without a GPU: SWEEP_DEVICE=torch-cpu BENCH_DEVICE=cpu (the GPU tests then skip).
#
#   device run: bash benchmarks/gpu_check.sh            (carry: [".gpu"])
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_check}
PY=${PY:-python3}
SWEEP_DEVICE=${SWEEP_DEVICE:-cuda}
BENCH_DEVICE=${BENCH_DEVICE:-cuda}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1 RADSTORE_PROGRESS=0

step() {  # step NAME SECONDS COMMAND...: run under a time limit, log its output and exit status
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit} s)" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$LOG"
}

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SITE=/tmp/radstore-site
if ! "$PY" -c "import SimpleITK, pydantic, pywt, cc3d, trimesh" 2>/dev/null && [ -f .gpu/site.tar.xz ]; then
  step "unpack .gpu/site.tar.xz" 60 "$PY" -c \
    "import tarfile; tarfile.open('.gpu/site.tar.xz').extractall('$SITE')"
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi
if ! "$PY" -c "import radiomics" 2>/dev/null && [ -f .gpu/pyradiomics.tar.gz ]; then
  mkdir -p /tmp/radstore-pyradiomics
  tar -xzf .gpu/pyradiomics.tar.gz -C /tmp/radstore-pyradiomics
  SRC=/tmp/radstore-pyradiomics/pyradiomics_bhklab-3.1.4
  step "build PyRadiomics' C extensions" 90 bash -c "cd $SRC && $PY setup.py -q build_ext --inplace"
  export PYTHONPATH="$SRC:$PYTHONPATH"
fi
DATA=../shared/data
[ -d .gpu/data ] && DATA=.gpu/data

step "machine" 60 bash -c "nvidia-smi -L; nproc; $PY -c 'import sys, torch, numpy, scipy; print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available(), \"numpy\", numpy.__version__, \"scipy\", scipy.__version__)'; $PY -c 'import radiomics; print(\"PyRadiomics\", radiomics.__version__)'"
step "CUDA agreement tests" 180 "$PY" -m pytest -q -rs -p no:cacheprovider -m gpu \
  tests/radiomics/test_settings_and_edges.py tests/radiomics/test_devices.py
step "randomized CPU-vs-CUDA sweep" 90 bash -c "for k in settings shape2d filters; do \
  $PY -m tests.radiomics._random_cases \$k 1000 30 --device $SWEEP_DEVICE; done" | tee "$OUT/sweep_$SWEEP_DEVICE.txt"
step "benchmark on $BENCH_DEVICE" 240 "$PY" benchmarks/radiomics.py --device "$BENCH_DEVICE" --threads 1 --quick \
  --batch-size 64 --data "$DATA" --cases ibsi_ct_phantom small_roi large_roi \
  --output "$OUT/radiomics_$BENCH_DEVICE.json"
echo "done; results in $OUT" | tee -a "$LOG"
