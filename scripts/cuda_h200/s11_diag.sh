#!/usr/bin/env bash
# Session 11: why the CUDA neighbour search path hangs (tests timed out in s11_run.sh run 1).
# Runs tiny computes with a 20 s timeout each; while one hangs, records GPU utilisation and the
# wait channels / stacks of its threads.
set -uo pipefail
OUT="${OUT:-/tmp/s11_diag}"; mkdir -p "$OUT" /tmp/s11b
tar xJf dist/s11.tar.xz -C /tmp/s11b
BIN=/tmp/s11b/anisoap-candle-cuda
eval "$(BIN=$BIN bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
$BIN generate --kind liquid --particles 60 --species 2 --frames 2 --seed 3 -o /tmp/tiny.xyz > /dev/null 2>&1
one() { # label, args...
  local label="$1"; shift
  ANISOAP_LOG=anisoap_candle=trace timeout 20 $BIN compute --device cuda:0 --max-angular 2 --cutoff 4.0 --width 1.2 "$@" /tmp/tiny.xyz -o /tmp/tiny_$label.npy > "$OUT/$label.log" 2>&1 &
  local pid=$!
  sleep 8
  if kill -0 $pid 2>/dev/null; then
    echo "== $label: still running after 8 s"
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader
    local cpid; cpid=$(pgrep -P $pid | head -1); [ -z "$cpid" ] && cpid=$pid
    for t in /proc/$cpid/task/*; do echo "$(basename $t) $(cat $t/comm) $(cat $t/wchan 2>/dev/null) $(cat $t/stat | awk '{print $3}')"; done
    command -v gdb > /dev/null && timeout 20 gdb -p $cpid -batch -ex "thread apply all bt 12" 2>&1 | grep -E "^#|^Thread" | head -80
  fi
  wait $pid; echo "== $label rc=$?"; tail -15 "$OUT/$label.log"
}
one single --chunk-pairs 100000000
one multi --chunk-pairs 97
one host --chunk-pairs 97 --host-neighbor-search
timeout 60 /tmp/s11b/cuda_search --test-threads 1 cuda_search_finds > "$OUT/test_pairs.log" 2>&1; echo "pairs test rc=$?"; tail -12 "$OUT/test_pairs.log"
