#!/usr/bin/env bash
# On the GPU machine, from the repo root (bundle: scripts/cuda_h200/bundle.sh): unpack the bundle, tests, kernel bench, then the suite.
set -uo pipefail
OUT="${OUT:-/tmp/cuda_h200_out}"; mkdir -p "$OUT"; R="$OUT"; L="$R/logs.txt"; mkdir -p /tmp/b /tmp/suite
python3 -c "import lzma,tarfile; tarfile.open('dist/gpu-bundle.tar.xz').extractall('/tmp/b')"
export BIN=/tmp/b/anisoap-candle-cuda
eval "$(bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nproc; echo "LD=$LD_LIBRARY_PATH"; } > "$L" 2>&1
echo "== tests" >> "$L"
( cd anisoap-candle && timeout 150 /tmp/b/cuda_fused --nocapture --test-threads 1 ) >> "$L" 2>&1
trc=$?; echo "tests rc=$trc" >> "$L"; tail -3 "$L"
echo "== kernel bench" >> "$L"
timeout 60 /tmp/b/cuda_kernel_bench > "$R/kernel_bench.csv" 2>> "$L"; echo "bench rc=$?" >> "$L"
cat "$R/kernel_bench.csv" | head -30
if [ "$trc" = 0 ] || [ -n "${FORCE:-}" ]; then
  echo "== suite" >> "$L"
  OUT=/tmp/suite GPU_TAG=h200 COMMIT="${COMMIT:-unknown}" timeout "${SUITE_LIMIT:-330}" bash scripts/gpu-fused-suite.sh >> "$L" 2>&1
  echo "suite rc=$?" >> "$L"
  cp /tmp/suite/*.csv "$R/" 2>/dev/null
  (cd /tmp/suite && tar cJf "$R/traces.tar.xz" trace_*.json 2>/dev/null)
fi
grep -E "^(N=|parity|gpu:)|rc=|FAIL" "$L" | tail -40
