#!/bin/bash
# Runs on the execute node, in the job's scratch directory (merge.sub's executable), where
# the N shard files have been transferred:
#   merge.sh N EXT BIN_NAME MERGED_NAME
set -euo pipefail
if [ $# -ne 4 ]; then echo "usage: merge.sh N EXT BIN_NAME MERGED_NAME" >&2; exit 2; fi
N=$1 EXT=$2 BIN=$3 MERGED=$4
[ -x "./$BIN" ] || chmod +x "./$BIN"
shards=() missing=()
for ((k = 0; k < N; k++)); do
    f=$(printf 'shard_%05d' "$k").$EXT
    if [ -f "$f" ]; then shards+=("$f"); else missing+=("$k"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: ${#missing[@]} of $N shards missing: $(IFS=,; echo "${missing[*]}")" >&2
    exit 1
fi
echo "anisoap merge of $N shards on $(hostname) -> $MERGED"
"./$BIN" merge --output "$MERGED" "${shards[@]}"
echo "finished $(date -u +%Y-%m-%dT%H:%M:%SZ)"
