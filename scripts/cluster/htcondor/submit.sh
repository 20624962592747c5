#!/usr/bin/env bash
# Submit a sharded anisoap-candle run to HTCondor as a DAG: N shard nodes (shard.sub, one
# job each), all parents of one merge node (merge.sub).
#
#   scripts/cluster/htcondor/submit.sh --shards N --input traj.xyz [--input more.xyz ...] \
#       --out DIR [--config hypers.toml] [--species 1,6|auto] [options] [compute args...]
#
# Options (everything else is passed to `anisoap-candle compute` unchanged, e.g.
# --max-angular 4, --per-center, --device cuda; no quotes, no file paths: the jobs run in
# their scratch directories, where only the binary, the config and the inputs are sent):
#   --shards N          number of shards (at most the number of frames)
#   --input FILE        extended XYZ input (repeatable; distinct base names)
#   --out DIR           run directory: DIR/anisoap.dag, DIR/shards/, DIR/logs/
#   --config FILE       hyperparameter file (TOML/JSON)
#   --species LIST      fixed columns: atomic numbers (1,6,8) or `auto` (default auto)
#   --format EXT        shard format: npz (default), npy, safetensors, csv
#   --merged FILE       merged output (default DIR/merged.npz); format by extension
#   --bin PATH          anisoap-candle binary to send with the jobs (default:
#                       $ANISOAP_CANDLE_BIN, then `anisoap-candle` on PATH, then this
#                       checkout's target/release/anisoap-candle); it must run on the
#                       execute nodes (same architecture, glibc at least as new)
#   --var NAME=VALUE    a macro for every node (VARS ALL_NODES), e.g. --var cpus=8
#                       --var memory=16GB --var disk=10GB --var merge_memory=8GB
#                       (repeatable; see the macro lists in shard.sub and merge.sub)
#   --dry-run           write DIR/anisoap.dag and print it, submit nothing
#
# After a failure, the same `condor_submit_dag DIR/anisoap.dag` runs DAGMan's rescue DAG:
# only the shard nodes that did not finish, then the merge.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

# shellcheck source=../common.sh
. "$here/../common.sh"

shards="" out="" config="" species="auto" format="npz" merged="" bin="${ANISOAP_CANDLE_BIN:-}" dry=0
inputs=() extra=() vars=()
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) need "$@"; shards=$2; shift 2 ;;
        --shards=*) shards=${1#*=}; shift ;;
        --input) need "$@"; inputs+=("$(abspath "$2")"); shift 2 ;;
        --input=*) inputs+=("$(abspath "${1#*=}")"); shift ;;
        --out) need "$@"; out=$2; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --config|-c) need "$@"; config=$(abspath "$2"); shift 2 ;;
        --config=*) config=$(abspath "${1#*=}"); shift ;;
        --species) need "$@"; species=$2; shift 2 ;;
        --species=*) species=${1#*=}; shift ;;
        --format) need "$@"; format=$2; shift 2 ;;
        --format=*) format=${1#*=}; shift ;;
        --merged) need "$@"; merged=$2; shift 2 ;;
        --merged=*) merged=${1#*=}; shift ;;
        --bin) need "$@"; bin=$2; shift 2 ;;
        --bin=*) bin=${1#*=}; shift ;;
        --var) need "$@"; vars+=("$2"); shift 2 ;;
        --var=*) vars+=("${1#*=}"); shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --shard|--shard=*|--frames|--frames=*|-o|--output|--output=*)
            die "$1 is set per job by this script; do not pass it" ;;
        --) shift; extra+=("$@"); break ;;
        *) extra+=("$1"); shift ;;
    esac
done

check_shard_options
find_binary

# Files sent with every shard job, named in the job by their base names.
sent=() names=()
[ -n "$config" ] && sent+=("$config")
sent+=("${inputs[@]}")
for f in "${sent[@]}"; do
    case "$f" in *[[:space:],\"\']*) die "path with a space, comma or quote: $f (HTCondor lists)" ;; esac
    b=$(basename "$f")
    for n in "${names[@]}"; do [ "$n" != "$b" ] || die "two inputs named $b: the jobs see base names only"; done
    names+=("$b")
done
for a in "${extra[@]}"; do
    case "$a" in *[\"\']*|"") die "compute argument with quotes or empty: '$a'" ;; esac
done

for v in "${vars[@]}"; do
    [[ "$v" =~ ^[A-Za-z_][A-Za-z0-9_]*=[^\"]*$ ]] || die "--var wants NAME=VALUE without quotes, not '$v'"
done

compute_args=()
[ -n "$config" ] && compute_args+=(--config "$(basename "$config")")
compute_args+=(--species "$species" "${extra[@]}")
for f in "${inputs[@]}"; do compute_args+=("$(basename "$f")"); done

mkdir -p "$out/shards" "$out/logs"   # HTCondor does not create log directories
out=$(cd "$out" && pwd)
[ -n "$merged" ] || merged=$out/merged.npz
mkdir -p "$(dirname "$merged")"
merged="$(cd "$(dirname "$merged")" && pwd)/$(basename "$merged")"
case "$out$merged" in *[[:space:],\"\']*) die "run directory or merged path with a space, comma or quote" ;; esac

dag=$out/anisoap.dag
{
    echo "# anisoap-candle on HTCondor, written by scripts/cluster/htcondor/submit.sh"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ): $shards shard nodes (shard.sub, one job each), then merge (merge.sub)."
    echo "# Submit: condor_submit_dag $dag"
    echo "# After a failure the same command runs the rescue DAG (unfinished nodes only)."
    echo
    echo "VARS ALL_NODES scripts=\"$here\" shards=\"$shards\" out=\"$out\" format=\"$format\""
    sent_list=$(IFS=,; echo "${sent[*]}")
    echo "VARS ALL_NODES bin=\"$bin\" inputs=\"${sent_list//,/, }\""
    echo "VARS ALL_NODES compute_args=\"${compute_args[*]}\" merged=\"$merged\""
    for v in "${vars[@]}"; do echo "VARS ALL_NODES ${v%%=*}=\"${v#*=}\""; done
    echo
    for ((k = 0; k < shards; k++)); do
        echo "JOB shard$k $here/shard.sub"
        echo "VARS shard$k shard_index=\"$k\" count=\"1\""
    done
    echo
    echo "JOB merge $here/merge.sub"
    printf 'PARENT'
    for ((k = 0; k < shards; k++)); do printf ' shard%d' "$k"; done
    echo " CHILD merge"
} > "$dag"

if [ $dry = 1 ]; then
    cat "$dag"
    exit 0
fi
command -v condor_submit_dag >/dev/null 2>&1 || die "condor_submit_dag not found: run this on an HTCondor access point (or use --dry-run)"
cd "$out"
condor_submit_dag anisoap.dag
echo "follow with: condor_q -dag -nobatch   (or tail -f $out/anisoap.dag.dagman.out); logs: $out/logs/"
