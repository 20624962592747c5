#!/usr/bin/env bash
# Submit a sharded anisoap-candle run to SLURM: a job array of N shard tasks, then a merge
# job that starts only when every task succeeded (--dependency=afterok:<array job>).
#
#   scripts/cluster/slurm/submit.sh --shards N --input traj.xyz [--input more.xyz ...] \
#       --out DIR [--config hypers.toml] [--species 1,6|auto] [options] [compute args...]
#
# Options (everything else is passed to `anisoap-candle compute` unchanged, e.g.
# --max-angular 4, --per-center, --density, --device cuda, --dtype f32):
#   --shards N          number of shards = array tasks (at most the number of frames)
#   --input FILE        extended XYZ input (repeatable; frames of all inputs, in order, form
#                       one trajectory)
#   --out DIR           run directory: DIR/shards/shard_KKKKK.EXT, DIR/logs/, DIR/jobs.env
#   --config FILE       hyperparameter file (TOML/JSON), as for `compute --config`
#   --species LIST      fixed columns: atomic numbers (1,6,8) or `auto` (default: auto; every
#                       shard then scans the species of all inputs, so give the list for big
#                       inputs)
#   --format EXT        shard file format: npz (default), npy, safetensors, csv
#   --merged FILE       merged output (default DIR/merged.npz); format by extension
#   --bin PATH          anisoap-candle binary, visible from the compute nodes (default:
#                       $ANISOAP_CANDLE_BIN, then `anisoap-candle` on PATH, then this
#                       checkout's target/release/anisoap-candle)
#   --array SPEC        submit only these tasks, e.g. `--array 3` or `--array 2,5-7`, to rerun
#                       failed shards; the merge job then waits for these tasks only and
#                       finds the other shard files already in DIR/shards
#   --no-merge          submit the shard array only
#   --sbatch-arg ARG    extra sbatch option for both jobs, e.g. --sbatch-arg --partition=gpu
#                       (repeatable; overrides the #SBATCH lines of the .sbatch files)
#   --shard-sbatch-arg ARG / --merge-sbatch-arg ARG   the same, for one of the two jobs only
#   --dry-run           print the sbatch commands, submit nothing
#
# Prints the job ids and writes them to DIR/jobs.env (ARRAY_JOB_ID=..., MERGE_JOB_ID=...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

# shellcheck source=../common.sh
. "$here/../common.sh"

shards="" out="" config="" species="auto" format="npz" merged="" bin="${ANISOAP_CANDLE_BIN:-}"
array="" merge=1 dry=0 merge_id=""
inputs=() extra=() sb_both=() sb_shard=() sb_merge=()
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
        --array) need "$@"; array=$2; shift 2 ;;
        --array=*) array=${1#*=}; shift ;;
        --no-merge) merge=0; shift ;;
        --sbatch-arg) need "$@"; sb_both+=("$2"); shift 2 ;;
        --sbatch-arg=*) sb_both+=("${1#*=}"); shift ;;
        --shard-sbatch-arg) need "$@"; sb_shard+=("$2"); shift 2 ;;
        --shard-sbatch-arg=*) sb_shard+=("${1#*=}"); shift ;;
        --merge-sbatch-arg) need "$@"; sb_merge+=("$2"); shift 2 ;;
        --merge-sbatch-arg=*) sb_merge+=("${1#*=}"); shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --shard|--shard=*|--frames|--frames=*|-o|--output|--output=*)
            die "$1 is set per task by this script; do not pass it" ;;
        --) shift; extra+=("$@"); break ;;
        *) extra+=("$1"); shift ;;
    esac
done

check_shard_options
find_binary
[ -x "$bin" ] || die "$bin is not executable"

mkdir -p "$out/shards" "$out/logs"
out=$(cd "$out" && pwd)
[ -n "$merged" ] || merged=$out/merged.npz
mkdir -p "$(dirname "$merged")"
merged="$(cd "$(dirname "$merged")" && pwd)/$(basename "$merged")"
[ -n "$array" ] || array="0-$((shards - 1))"

command -v sbatch >/dev/null 2>&1 || [ $dry = 1 ] || die "sbatch not found: run this on a SLURM login node"

# Arguments of every shard task: hypers, layout, extra flags, then the inputs.
compute_args=()
[ -n "$config" ] && compute_args+=(--config "$config")
compute_args+=(--species "$species" "${extra[@]}" "${inputs[@]}")

shard_cmd=(sbatch --parsable --array="$array" --chdir="$PWD"
    --output="$out/logs/shard_%a.out" "${sb_both[@]}" "${sb_shard[@]}"
    "$here/shard.sbatch" "$shards" "$out/shards" "$format" "$bin" "${compute_args[@]}")

show() { printf '%q ' "$@"; echo; }
if [ $dry = 1 ]; then
    show "${shard_cmd[@]}"
    if [ $merge = 1 ]; then
        show sbatch --parsable --dependency=afterok:'<ARRAY_JOB_ID>' \
            --kill-on-invalid-dep=yes --chdir="$PWD" --output="$out/logs/merge.out" \
            "${sb_both[@]}" "${sb_merge[@]}" "$here/merge.sbatch" "$shards" "$out/shards" "$format" "$bin" "$merged"
    fi
    exit 0
fi

{ echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) submit.sh"; show "$0" "$@"; } >> "$out/submit.log"
array_id=$("${shard_cmd[@]}")
array_id=${array_id%%;*}   # --parsable prints "id" or "id;cluster"
echo "submitted shard array: job $array_id, tasks $array of 0-$((shards - 1)) -> $out/shards/shard_KKKKK.$format"
{ echo "ARRAY_JOB_ID=$array_id"; echo "ARRAY_SPEC=$array"; echo "SHARDS=$shards"; } > "$out/jobs.env"

if [ $merge = 1 ]; then
    # afterok on an array job waits for all of its tasks; kill-on-invalid-dep cancels the
    # merge (Reason=DependencyNeverSatisfied) as soon as one task fails, instead of leaving
    # it pending for ever.
    merge_id=$(sbatch --parsable --dependency=afterok:"$array_id" \
        --kill-on-invalid-dep=yes --chdir="$PWD" --output="$out/logs/merge.out" \
        "${sb_both[@]}" "${sb_merge[@]}" \
        "$here/merge.sbatch" "$shards" "$out/shards" "$format" "$bin" "$merged")
    merge_id=${merge_id%%;*}
    echo "submitted merge: job $merge_id (after job $array_id succeeds) -> $merged"
    echo "MERGE_JOB_ID=$merge_id" >> "$out/jobs.env"
    echo "MERGED=$merged" >> "$out/jobs.env"
fi
echo "follow with: squeue -j $array_id${merge_id:+,$merge_id}   logs: $out/logs/"
