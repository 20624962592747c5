#!/usr/bin/env bash
# Issue 13: several Gay-Berne MLP training runs side by side on a many-core host (the GPU host's
# 16 cores), each in --sweep mode (features + Jacobians, training, errors; nothing written into
# the repository). Usage: BIN=path/to/gay_berne_potential OUT=dir bash scripts/gay_berne/probe.sh
# 'NAME|THREADS|ARGS' ...   (ARGS are the example's arguments; each run logs to $OUT/NAME.log)
set -u
: "${BIN:?path of the gay_berne_potential example binary}"
: "${OUT:?directory for the logs}"
mkdir -p "$OUT"
pids=()
for spec in "$@"; do
    IFS='|' read -r name threads args <<<"$spec"
    (
        echo "# $name: RAYON_NUM_THREADS=$threads gay_berne_potential $args"
        timer=""; [ -x /usr/bin/time ] && timer="/usr/bin/time -v"
        start=$(date +%s)
        eval "RAYON_NUM_THREADS=$threads $timer \"$BIN\" $args"
        echo "# $name: exit $? after $(($(date +%s) - start)) s"
    ) >"$OUT/$name.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
grep -H "test \|val  \|kept\|prepared\|features\|Maximum resident" "$OUT"/*.log
