#!/usr/bin/env bash
# On the GPU machine, from the repo root (bundle: scripts/cuda_h200/bundle.sh): throughput + multi-worker + traces with the bundle's binary.
set -uo pipefail
OUT="${OUT:-/tmp/cuda_h200_out}"; mkdir -p "$OUT"; R="$OUT"; L="$R/logs2.txt"; mkdir -p /tmp/b /tmp/suite
python3 -c "import lzma,tarfile; tarfile.open('dist/gpu-bundle.tar.xz').extractall('/tmp/b')"
export BIN=/tmp/b/anisoap-candle-cuda
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; free -g | head -2; } > "$L" 2>&1
OUT=/tmp/suite GPU_TAG=h200 COMMIT="${COMMIT:-unknown}" SKIP_PARITY=1 REPS="${REPS:-3}" timeout 520 bash scripts/gpu-fused-suite.sh >> "$L" 2>&1
echo "suite rc=$?" >> "$L"
cp /tmp/suite/*.csv "$R/" 2>/dev/null
(cd /tmp/suite && tar cJf "$R/traces2.tar.xz" trace_*.json 2>/dev/null)
grep -E "^(N=|gpu:)|rc=" "$L" | sed 's/, peak/; peak/' | cut -c1-170
