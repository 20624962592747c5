#!/usr/bin/env bash
# On the GPU machine, from the repo root (bundle: scripts/cuda_h200/bundle.sh): does glibc returning large buffers to the OS (page faults
# on every chunk) slow the host side? Same runs with and without GLIBC_TUNABLES.
set -uo pipefail
OUT="${OUT:-/tmp/cuda_h200_out}"; mkdir -p "$OUT"
mkdir -p /tmp/b && python3 -c "import lzma,tarfile; tarfile.open('dist/gpu-bundle.tar.xz').extractall('/tmp/b')"
B=/tmp/b/anisoap-candle-cuda; x=/tmp/bz.xyz
$B generate --kind benzene --particles 1000000 --seed 1 -o $x >/dev/null 2>&1
T="glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=68719476736:glibc.malloc.top_pad=1073741824"
echo "mode dtype devices wall_s read_s prepare_s loop_s search_s chunk_s"
for rep in 1 2 3; do for mode in plain tunables; do for dtype in f64 f32; do for dev in cuda:0 cuda:0,0,0,0; do
  if [ $mode = tunables ]; then export GLIBC_TUNABLES=$T; else unset GLIBC_TUNABLES; fi
  line="$($B --trace /tmp/t.json compute --device $dev --dtype $dtype --max-angular 6 --cutoff 7.0 --width 1.5 $x -o /tmp/o.npy 2>&1 | tail -1)"
  unset GLIBC_TUNABLES
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  echo "$mode $dtype $dev $t $(python3 scripts/trace_split.py /tmp/t.json)"
done; done; done; done | tee $OUT/malloc.txt
