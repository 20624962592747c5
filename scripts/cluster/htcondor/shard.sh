#!/bin/bash
# Runs on the execute node, in the job's scratch directory (shard.sub's executable):
#   shard.sh K N EXT BIN_NAME [compute arguments...]
set -euo pipefail
if [ $# -lt 4 ]; then echo "usage: shard.sh K N EXT BIN_NAME [compute args...]" >&2; exit 2; fi
K=$1 N=$2 EXT=$3 BIN=$4
shift 4
[ -x "./$BIN" ] || chmod +x "./$BIN"   # in case the transfer dropped the execute bit
# The CPU backend's thread pool follows request_cpus (HTCondor sets OMP_NUM_THREADS to it).
export RAYON_NUM_THREADS=${OMP_NUM_THREADS:-1}
out=$(printf 'shard_%05d' "$K").$EXT
echo "anisoap shard $K/$N on $(hostname) (${RAYON_NUM_THREADS} CPUs) -> $out"
echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Atomic output: the shard file exists only if compute finished. A non-zero exit fails the
# job (retried max_retries times), then the DAG node; the merge node never runs.
"./$BIN" compute --shard "$K/$N" --output "$out" "$@"
echo "finished $(date -u +%Y-%m-%dT%H:%M:%SZ)"
