#!/usr/bin/env bash
# Run ON the GPU machine, from the repo root, after scripts/build-cuda.sh made
# dist/anisoap-candle-cuda elsewhere. Shows the GPU, finds the CUDA 13 libraries
# the binary links (libcuda.so.1 libcudart.so.13 libcublas.so.13
# libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13), puts their folders on
# LD_LIBRARY_PATH when the loader can't already see them, then runs
#   dist/anisoap-candle-cuda "$@"
# Env: BIN (default dist/anisoap-candle-cuda), CUDA_LIB_DIRS (extra folders, ':'-separated).
set -euo pipefail

BIN="${BIN:-dist/anisoap-candle-cuda}"
[[ -x "$BIN" ]] || { echo "gpu-check: $BIN not found or not executable (build it with scripts/build-cuda.sh)" >&2; exit 2; }

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || true
  nvidia-smi | head -n 4 | tail -n 2 || true
else
  echo "nvidia-smi not found"
fi
command -v nvcc >/dev/null && nvcc --version | grep -i release || true

missing_libs() { # prints the libraries the loader cannot resolve for $BIN
  ldd "$BIN" 2>/dev/null | awk '/=> not found/ {print $1}'
}

missing="$(missing_libs)"
if [[ -n "$missing" ]]; then
  echo "== looking for: $(echo $missing)"
  cands=()
  [[ -n "${CUDA_LIB_DIRS:-}" ]] && IFS=: read -r -a cands <<<"$CUDA_LIB_DIRS"
  cands+=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
  for d in /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/x86_64-linux/lib \
           /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [[ -d "$d" ]] && cands+=("$d")
  done
  # pip wheels (e.g. the ones PyTorch cu13x pulls in): .../site-packages/nvidia/cu13/lib
  py="$(command -v python3 || true)"
  if [[ -n "$py" ]]; then
    while IFS= read -r d; do [[ -d "$d" ]] && cands+=("$d"); done < <(
      "$py" - <<'EOF' 2>/dev/null || true
import site, sys, glob, os
roots = set(site.getsitepackages() + [site.getusersitepackages()] + sys.path)
for r in sorted(p for p in roots if p and os.path.isdir(p)):
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        print(d)
EOF
    )
  fi
  # ldconfig's cache, for completeness
  while IFS= read -r d; do cands+=("$d"); done < <(
    ldconfig -p 2>/dev/null | awk -F'=> ' '/lib(cuda|cudart|cublas|cublasLt|curand|nvrtc)\.so/ {print $2}' | xargs -r -n1 dirname | sort -u)

  extra=""
  for lib in $missing; do
    for d in "${cands[@]}"; do
      if [[ -e "$d/$lib" ]]; then
        case ":$extra:" in *":$d:"*) ;; *) extra="${extra:+$extra:}$d" ;; esac
        echo "   $lib -> $d"
        break
      fi
    done
  done
  export LD_LIBRARY_PATH="${extra}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi

echo "== ldd $BIN"
ldd "$BIN" | grep -E 'cuda|cublas|curand|nvrtc|not found' || true
if [[ -n "$(missing_libs)" ]]; then
  echo "gpu-check: still missing: $(echo $(missing_libs)); set CUDA_LIB_DIRS=dir1:dir2" >&2
  exit 3
fi

echo "== $BIN $*"
exec "$BIN" "$@"
