#!/usr/bin/env bash
# Cross-checks `anisoap-candle compute` against the original AniSOAP outputs in
# ../shared/reference/<case>/ (not part of this repository): for every case, runs the
# arguments of compute.json on each requested backend and compares with expected.npy.
# Usage: scripts/check_shared_reference.sh [REFERENCE_DIR] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:-../shared/reference}"
bin="${2:-target/release/anisoap-candle}"
if [ ! -d "$ref" ]; then
  echo "error: reference directory $ref does not exist" >&2
  exit 2
fi
[ -x "$bin" ] || cargo build --release -p anisoap-candle-cli
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for case in "$ref"/*/; do
  name="$(basename "$case")"
  [ -f "$case/compute.json" ] || continue
  mapfile -t args < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' "$case/compute.json")
  rtol="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("rtol", 1e-8))' "$case/compute.json")"
  atol="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("atol", 1e-12))' "$case/compute.json")"
  for extra in "" "--reference"; do
    label="$name ${extra:-candle}"
    if [ -n "$extra" ]; then
      # The reference backend is CPU/f64 only: drop the device/dtype pairs.
      run_args=(); skip=0
      for a in "${args[@]}"; do
        if [ $skip = 1 ]; then skip=0; continue; fi
        case "$a" in --device|--dtype) skip=1 ;; *) run_args+=("$a") ;; esac
      done
      run_args+=("$extra")
    else
      run_args=("${args[@]}")
    fi
    (cd "$case" && "$OLDPWD/$bin" compute --quiet "${run_args[@]}" input.xyz -o "$out/$name.npy")
    if "$bin" compare "$out/$name.npy" "$case/expected.npy" --rtol "$rtol" --atol "$atol"; then
      echo "PASS $label"
    else
      echo "FAIL $label"; status=1
    fi
  done
done
exit $status
