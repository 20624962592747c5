#!/usr/bin/env bash
# Whole-command time on the H200 host with and without the on-disk PTX cache
# (fused_cuda/ptx_cache.rs), against an earlier binary, from the repository root:
#   NEW=tarball OLD=tarball REAL=ellipsoids.xyz OUT=dir bash scripts/cuda_h200/startup.sh
# (tarballs of scripts/cuda_h200/s11_bundle.sh or just anisoap-candle-cuda). Per repetition,
# interleaved: the new binary with an empty cache ("cold"), with the cache it just filled
# ("warm"), with the cache off (ANISOAP_CUDA_CACHE=off) and the old binary; on 10^6
# benzene-like particles (lmax 6 f64) and on the original's dataset (its example 2).
# Writes $OUT/startup.csv and $OUT/tests_*.log (the GPU tests with a cold, then a warm cache).
set -uo pipefail
OUT="${OUT:-/tmp/startup}"; mkdir -p "$OUT" /tmp/st_new /tmp/st_old
tar xJf "$NEW" -C /tmp/st_new && tar xJf "$OLD" -C /tmp/st_old
N=/tmp/st_new/anisoap-candle-cuda; O=/tmp/st_old/anisoap-candle-cuda
eval "$(BIN=$N bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
if [ -x /tmp/st_new/cuda_fused ]; then
  for state in cold warm; do
    [ $state = cold ] && rm -rf /tmp/st_testcache
    for t in cuda_fused cuda_search; do
      ANISOAP_CUDA_CACHE=/tmp/st_testcache timeout 240 /tmp/st_new/$t --test-threads 1 > "$OUT/tests_${t}_$state.log" 2>&1
      echo "tests $t ($state cache) rc=$?: $(grep -E '^test result' "$OUT/tests_${t}_$state.log")"
    done
    echo "cache files: $(ls /tmp/st_testcache | wc -l)"
  done
fi
xyz=/tmp/st_benzene.xyz
$N generate --kind benzene --particles 1000000 --seed 1 -o $xyz > /dev/null 2>&1
R="--max-angular 9 --max-radial 6 --cutoff 7.0 --width 1.5 --subtract-center-contribution --semi-axes 4,4,0.5 --basis-rcond 1e-8 --basis-tol 1e-3"
B="--max-angular 6 --cutoff 7.0 --width 1.5"
echo "case,variant,rep,wall_s,nvrtc_spans" > "$OUT/startup.csv"
one() { # case variant rep binary cache args...
  local case=$1 variant=$2 rep=$3 bin=$4 cache=$5; shift 5
  local s e n
  s=$(date +%s.%N)
  ANISOAP_CUDA_CACHE=$cache timeout 60 $bin --trace /tmp/st.json compute --quiet --device cuda:0 "$@" -o /tmp/st_$variant.npy > /tmp/st.log 2>&1 || { echo "ERROR $case $variant: $(tail -2 /tmp/st.log)"; return; }
  e=$(date +%s.%N)
  n=$(( $(grep -o '"name":"nvrtc_compile"' /tmp/st.json | wc -l) / 2 ))
  echo "$case,$variant,$rep,$(awk "BEGIN{print $e-$s}"),$n" >> "$OUT/startup.csv"
}
for rep in 1 2 3; do
  for case in benzene real; do
    if [ $case = benzene ]; then args="$B $xyz"; else args="$R $REAL"; fi
    rm -rf /tmp/st_cache
    one $case cold $rep $N /tmp/st_cache $args
    one $case warm $rep $N /tmp/st_cache $args
    one $case off $rep $N off $args
    one $case old $rep $O off $args
  done
done
for v in warm off old; do echo "real cold vs $v: $($N compare /tmp/st_cold.npy /tmp/st_$v.npy 2>&1 | tail -1)"; done
python3 - "$OUT/startup.csv" <<'PY'
import csv, sys, collections
d = collections.defaultdict(list)
for r in csv.DictReader(open(sys.argv[1])):
    d[(r["case"], r["variant"])].append((float(r["wall_s"]), r["nvrtc_spans"]))
for k, v in sorted(d.items()):
    w = sorted(x[0] for x in v)
    print(k, "wall", " ".join(f"{x:.3f}" for x in w), "nvrtc spans", v[0][1])
PY
