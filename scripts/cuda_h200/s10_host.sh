#!/usr/bin/env bash
# Issue 12, host side (session 10): the session-9 CUDA binary ("old") and this session's
# ("new": reused pair buffers, neighbour search on a producer thread overlapping the device,
# parallel per-particle data, count-only counting pass, reused staging buffers) side by side,
# interleaved, on the benzene-like 1e6-particle system. Binaries: dist/s10/{old,new}.xz
# (stripped, xz). Writes $OUT/host_split.csv (+ traces). Run from the repo root on the GPU host.
set -uo pipefail
OUT="${OUT:-/tmp/s10_out}"; mkdir -p "$OUT" /tmp/s10b
for b in old new; do xz -dc "dist/s10/$b.xz" > "/tmp/s10b/$b"; chmod +x "/tmp/s10b/$b"; done
export BIN=/tmp/s10b/new
eval "$(BIN=$BIN bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
echo "gpu: $gpu; cores $(nproc)"
xyz=/tmp/benzene_1e6.xyz
/tmp/s10b/new generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
REPS="${REPS:-2}"
echo "binary,lmax,dtype,chunk_pairs,rep,wall_s,pairs,read_s,prepare_s,loop_s,search_s,chunk_s,end_to_end_pairs_per_s" > "$OUT/host_split.csv"
run() { # binary lmax dtype chunk rep
  local b="$1" l="$2" d="$3" c="$4" r="$5" line t pairs split
  line="$(/tmp/s10b/$b --trace /tmp/s10_run.json compute --device cuda:0 --dtype "$d" --max-angular "$l" --cutoff 7.0 --width 1.5 --chunk-pairs "$c" "$xyz" -o "/tmp/s10_$b.npy" 2>&1 | tail -1)"
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  split="$(python3 scripts/trace_split.py /tmp/s10_run.json 2>/dev/null || echo nan nan nan nan nan)"
  read -r rd pr lp se ch <<< "$split"
  local rate; rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
  echo "$b,$l,$d,$c,$r,$t,$pairs,$rd,$pr,$lp,$se,$ch,$rate" >> "$OUT/host_split.csv"
  echo "$b l$l $d c$c rep$r: wall $t s; read $rd prepare $pr loop $lp (search $se chunk $ch); prepare+loop $rate pairs/s"
  [ "$r" = 1 ] && [ "$c" = 1048576 ] && cp /tmp/s10_run.json "$OUT/trace_${b}_l${l}_${d}.json"
}
for rep in $(seq "$REPS"); do
  for cfg in "6 f64" "6 f32" "4 f64" "8 f64"; do
    set -- $cfg
    for b in old new; do run "$b" "$1" "$2" 1048576 "$rep"; done
    if [ "$cfg" = "6 f64" ] || [ "$cfg" = "6 f32" ]; then
      cmp -s /tmp/s10_old.npy /tmp/s10_new.npy && echo "identical old/new l$1 $2" || echo "DIFFERENT old/new l$1 $2"
      run new "$1" "$2" 4194304 "$rep"
    fi
  done
done
