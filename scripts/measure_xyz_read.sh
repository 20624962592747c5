#!/usr/bin/env bash
# Speed of reading extended XYZ (issue 12, host side): the streaming frame parser production
# uses (`XyzFrames`) and the first pass over every input (`pipeline::scan_inputs`: frames,
# bytes, XXH3-128, types), in MB/s, for one 10^6-particle frame and 10^4 frames of 100
# particles (benzene-like, one species, ~193 MB each), over a sweep of rayon thread counts.
#
#   cargo build --release -p anisoap-candle --example xyz_read_bench
#   BIN=target/release/examples/xyz_read_bench bash scripts/measure_xyz_read.sh > xyz_read.csv
#
# Optional: BEFORE=<an older build of the same example> runs it too, interleaved with BIN
# (same files, same thread counts, alternating), e.g. the example source built against the
# library before the fast reader:
#   git worktree add /tmp/xyz_before 5d782a5
#   cp anisoap-candle/examples/xyz_read_bench.rs /tmp/xyz_before/anisoap-candle/examples/
#   (cd /tmp/xyz_before && cargo build --release -p anisoap-candle --example xyz_read_bench)
#   BEFORE=/tmp/xyz_before/target/release/examples/xyz_read_bench
# THREADS (default "1 2 4 8 16", capped at the number of cores), REPEAT (timed passes per
# run, best kept; default 3), DIR (where the inputs go; default a fresh temporary folder,
# removed at the end). No network, no Python; on 16 cores it takes well under 2 minutes.
#
# Output (stdout): CSV `binary,file,bytes,frames,particles,threads,parse_s,parse_MB_s,
# scan_s,scan_MB_s,parse_cpu_s`, one row per (binary, file, threads), best of REPEAT passes
# (parse_cpu_s: least CPU time of a parse pass, all threads); the file is read once untimed
# before each run, so the page cache holds it and the numbers are the parser's, not the
# disk's. Progress goes to stderr.
set -euo pipefail

BIN=${BIN:?set BIN to a built xyz_read_bench example (see the header of this script)}
BEFORE=${BEFORE:-}
REPEAT=${REPEAT:-3}
cores=$(nproc)
threads=()
for t in ${THREADS:-1 2 4 8 16}; do
    if [ "$t" -le "$cores" ]; then threads+=("$t"); fi
done

if [ -n "${DIR:-}" ]; then
    mkdir -p "$DIR"
else
    DIR=$(mktemp -d)
    trap 'rm -rf "$DIR"' EXIT
fi

big="$DIR/benzene_1x1e6.xyz"
small="$DIR/benzene_1e4x100.xyz"
[ -s "$big" ] || { echo "generating $big" >&2; "$BIN" generate 1000000 1 1 "$big"; }
[ -s "$small" ] || { echo "generating $small" >&2; "$BIN" generate 100 10000 1 "$small"; }

binaries=("after=$BIN")
if [ -n "$BEFORE" ]; then binaries=("before=$BEFORE" "after=$BIN"); fi

echo "binary,file,bytes,frames,particles,threads,parse_s,parse_MB_s,scan_s,scan_MB_s,parse_cpu_s"
for file in "$big" "$small"; do
    for t in "${threads[@]}"; do
        for entry in "${binaries[@]}"; do
            name=${entry%%=*}
            bin=${entry#*=}
            echo "$name $(basename "$file") threads=$t" >&2
            "$bin" read --threads "$t" --repeat "$REPEAT" "$file" | sed "s|^$DIR/|$name,|"
        done
    done
done
