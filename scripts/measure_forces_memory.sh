#!/usr/bin/env bash
# Forces of large frames (issue 13): time and peak memory of the differentiable descriptor's
# forward and forward + backward, one configuration per process (`--example forces_memory`),
# for the fused CPU path (analytic backward) up to 10^5 particles and the tensor-op autograd
# (the oracle) at the sizes it can hold. Writes one JSON file with every run.
#
# Usage: scripts/measure_forces_memory.sh [OUT.json]   (default results/gradients/forces_memory_cpu.json)
# Environment:
#   FUSED    "PARTICLES:LMAX ..." for the fused path (default "3000:4 3000:6 10000:6 30000:6 100000:4 100000:6")
#   TENSOR   the same for the tensor ops (default "3000:4 3000:6"; 10^4 particles at lmax 6 took
#            18.9 GB and 48 s on the 2-core VM, 10^5 would not fit)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/gradients/forces_memory_cpu.json}"
FUSED="${FUSED:-3000:4 3000:6 10000:6 30000:6 100000:4 100000:6}"
TENSOR="${TENSOR:-3000:4 3000:6}"
flock /tmp/anisoap-build.lock cargo build --release -p anisoap-candle --example forces_memory
BIN=target/release/examples/forces_memory
TMP="$(mktemp)"
trap 'rm -f "$TMP"' EXIT
for cfg in $TENSOR; do "$BIN" "${cfg%%:*}" "${cfg##*:}" tensor_ops | tee -a "$TMP"; done
for cfg in $FUSED; do "$BIN" "${cfg%%:*}" "${cfg##*:}" fused | tee -a "$TMP"; done
mkdir -p "$(dirname "$OUT")"
python3 - "$TMP" "$OUT" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
report = {
    "what": "differentiable descriptor, forward and forward + backward (positions, quaternions), one run each, one process per configuration",
    "system": {"kind": "EllipsoidLiquid", "species": 1, "periodic": True, "density": 0.3, "seed": 7},
    "hypers": {"basis": "gto", "cutoff_radius": 4.0, "radial_gaussian_width": 1.0, "max_radial": "default"},
    "dtype": "f64",
    "memory": "MB from /proc/self/status: VmRSS after the pair list, VmHWM after it (search buffers), after the forward, and at the end",
    "runs": runs,
}
json.dump(report, open(sys.argv[2], "w"), indent=2)
open(sys.argv[2], "a").write("\n")
print("wrote", sys.argv[2])
PY
