# Shared by scripts/cluster/{slurm,htcondor}/submit.sh (sourced, not run): error exit,
# argument helpers, the checks of the shard options and the choice of the binary.
# The sourcing script sets `repo` (the checkout) and the option variables first.

die() { echo "submit.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
# Absolute path of an existing file.
abspath() {
    [ -e "$1" ] || die "no such file: $1"
    echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}
# `need "$@"` in the option loop: the option in $1 has a value in $2.
need() { [ $# -ge 2 ] || die "$1 needs a value"; }

# Checks the options every shard job needs: shards, out, inputs, format, species.
check_shard_options() {
    [ -n "$shards" ] || die "--shards N is required (see --help)"
    [[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer, not '$shards'"
    [ -n "$out" ] || die "--out DIR is required"
    [ ${#inputs[@]} -gt 0 ] || die "at least one --input FILE is required"
    case "$format" in npz|npy|safetensors|csv) ;; *) die "--format must be npz, npy, safetensors or csv" ;; esac
    [ -n "$species" ] || die "--species needs a list or auto: shards need fixed columns"
}

# Sets `bin` (absolute) when --bin / ANISOAP_CANDLE_BIN did not: the anisoap-candle on PATH,
# else the checkout's release build.
find_binary() {
    if [ -z "$bin" ]; then
        if command -v anisoap-candle >/dev/null 2>&1; then bin=$(command -v anisoap-candle)
        elif [ -x "$repo/target/release/anisoap-candle" ]; then bin=$repo/target/release/anisoap-candle
        else die "no anisoap-candle binary: build it (cargo build --release -p anisoap-candle-cli) or pass --bin"
        fi
    fi
    bin=$(abspath "$bin")
}
