#!/usr/bin/env bash
# End-to-end test of the SLURM path on this machine: a real single-node SLURM (Debian's
# slurm-wlm + munge, slurmctld and slurmd on localhost, everything under a temporary
# directory, no systemd, no accounting), the shard array + merge job of submit.sh, and
# a byte-for-byte comparison with the single in-process run.
#
#   bash scripts/cluster/slurm/local_test.sh [--shards "4 16"] [--frames 64] [--keep]
#   bash scripts/cluster/slurm/local_test.sh 2>&1 | tee results/cluster/slurm_local_test.log
#
# Needs root (it starts slurmd and installs the packages with apt-get when they are
# missing). Steps:
#   1. apt-get install slurm-wlm munge (only if missing)
#   2. build the CLI (cargo build --release -p anisoap-candle-cli; a no-op when built),
#      or use $ANISOAP_CANDLE_BIN
#   3. munged with a fresh key, slurm.conf for one node (CPUs=2), slurmctld, slurmd
#   4. generate a seeded trajectory (64 frames x 20 particles, 2 species), compute it in
#      one process (.npy)
#   5. for each N in --shards: submit.sh --shards N, wait, check every task and the merge
#      COMPLETED, cmp merged.npy single.npy
#   6. failure path: one shard made to fail (its output path is a directory) -> task
#      FAILED, merge CANCELLED (DependencyNeverSatisfied), no merged file; then the
#      documented recovery (submit.sh ... --array K) -> merged equals the single run
#   7. daemons stopped on exit (trap), whatever happened
# The last line is "PASS: ..." or "FAIL: ..." (exit status 0 or 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
shard_counts="4 16"
frames=64
keep=0
timeout_s=${ANISOAP_SLURM_TIMEOUT:-180}   # per wait for one set of jobs
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) shard_counts=$2; shift 2 ;;
        --frames) frames=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[slurm-test +$(elapsed)s] $*"; }
fail() { log "error: $*" >&2; exit 1; }

passed=0
checks=0
tmp="" ctld_pid="" slurmd_pid="" munged_pidfile=""
cleanup() {
    rc=$?
    set +e
    if [ -n "$ctld_pid" ] && [ -n "${SLURM_CONF:-}" ]; then
        scancel --quiet --full -u root >/dev/null 2>&1 || true
    fi
    if [ $passed != 1 ] && [ -n "$tmp" ] && [ -d "$tmp/slurm/log" ]; then
        echo "---- daemon logs (last 30 lines each) ----"
        for f in "$tmp"/slurm/log/*; do echo "== $f"; tail -n 30 "$f"; done
        for f in "$tmp"/run*/logs/*; do [ -f "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done
    fi
    for p in $slurmd_pid $ctld_pid; do
        kill "$p" 2>/dev/null
    done
    for p in $slurmd_pid $ctld_pid; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$munged_pidfile" ] && [ -f "$munged_pidfile" ]; then
        kill "$(cat "$munged_pidfile")" 2>/dev/null
    fi
    [ -n "$ctld_pid$slurmd_pid" ] && log "daemons stopped"
    if [ -n "$tmp" ]; then
        if [ $keep = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    fi
    if [ $passed = 1 ]; then
        echo "slurm-local: $checks passed, 0 failed"
        echo "PASS: SLURM shards ($shard_counts + failure/rerun) merged equal the single run byte for byte ($(elapsed) s)"
        exit 0
    fi
    echo "slurm-local: $checks passed, 1 failed"
    echo "FAIL: SLURM local test (exit $rc, $(elapsed) s)"
    exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || fail "run as root (slurmd and apt-get need it)"

# ---- 1. packages ------------------------------------------------------------------------
missing=()
for cmd in slurmctld slurmd sbatch munged; do command -v $cmd >/dev/null 2>&1 || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    log "installed"
fi
log "packages: $(dpkg-query -W -f '${Package} ${Version}, ' slurmctld slurmd slurm-client munge 2>/dev/null)"

# ---- 2. the CLI -------------------------------------------------------------------------
if [ -n "${ANISOAP_CANDLE_BIN:-}" ]; then
    bin=$ANISOAP_CANDLE_BIN
else
    log "cargo build --release -p anisoap-candle-cli"
    (cd "$repo" && cargo build --release --quiet -p anisoap-candle-cli)
    bin=$repo/target/release/anisoap-candle
fi
[ -x "$bin" ] || fail "no binary at $bin"
bin_src=$bin

# ---- 3. munge + slurm -------------------------------------------------------------------
# munged wants its key private and its socket directory executable by everyone.
tmp=$(mktemp -d /tmp/anisoap-slurm.XXXXXX)
chmod 755 "$tmp"
# One copy of the binary for every step, even if a build replaces the original meanwhile.
bin=$tmp/anisoap-candle
cp "$bin_src" "$bin"
log "binary $bin_src ($(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo 'no git'), sha256 $(sha256sum "$bin" | cut -c1-16)) copied to $bin"
mkdir -p "$tmp/munge/etc" "$tmp/munge/run" "$tmp/munge/lib" \
    "$tmp/slurm/state" "$tmp/slurm/spool" "$tmp/slurm/log"
chmod 700 "$tmp/munge/etc" "$tmp/munge/lib"
chmod 755 "$tmp/munge/run"
dd if=/dev/urandom of="$tmp/munge/etc/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/etc/munge.key"
sock=$tmp/munge/run/munge.socket
munged_pidfile=$tmp/munge/run/munged.pid
munged --key-file="$tmp/munge/etc/munge.key" --socket="$sock" --pid-file="$munged_pidfile" \
    --log-file="$tmp/slurm/log/munged.log" --seed-file="$tmp/munge/lib/munged.seed"
munge -n -S "$sock" | unmunge -S "$sock" >/dev/null || fail "munge round trip failed"
log "munged up ($sock)"

node=$(hostname -s)
# Ports away from the defaults (6817/6818), so a real SLURM on this host is not disturbed.
port=${ANISOAP_SLURM_PORT:-16817}
export SLURM_CONF=$tmp/slurm/slurm.conf
cat > "$SLURM_CONF" <<EOF
# Single-node SLURM for local_test.sh: controller and compute node on this machine.
ClusterName=anisoap-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$tmp/slurm/state
SlurmdSpoolDir=$tmp/slurm/spool
SlurmctldPidFile=$tmp/slurm/slurmctld.pid
SlurmdPidFile=$tmp/slurm/slurmd.pid
SlurmctldLogFile=$tmp/slurm/log/slurmctld.log
SlurmdLogFile=$tmp/slurm/log/slurmd.log
# No cgroups, no systemd: track job processes by /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# No accounting (no slurmdbd): job states come from scontrol, kept an hour (MinJobAge).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
# Trust the node line below, whatever the hardware reports.
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -c -f "$SLURM_CONF" > "$tmp/slurm/log/slurmctld.stderr" 2>&1 &
ctld_pid=$!
slurmd -D -f "$SLURM_CONF" -N "$node" > "$tmp/slurm/log/slurmd.stderr" 2>&1 &
slurmd_pid=$!
for i in $(seq 300); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    kill -0 $ctld_pid 2>/dev/null || fail "slurmctld exited"
    kill -0 $slurmd_pid 2>/dev/null || fail "slurmd exited"
    [ "$i" = 300 ] && fail "node $node not idle after 30 s (state '$state')"
    sleep 0.1
done
log "slurmctld (pid $ctld_pid) + slurmd (pid $slurmd_pid) up; node $node idle"
echo "---- $SLURM_CONF ----"; grep -v '^#' "$SLURM_CONF"; echo "----"
sinfo

# ---- 4. input and the single run --------------------------------------------------------
traj=$tmp/traj.xyz
"$bin" generate --kind liquid --particles 20 --species 2 --frames "$frames" --periodic \
    --density 0.05 --seed 11 -o "$traj"
"$bin" compute --config "$repo/configs/example.toml" --species 1,6 -o "$tmp/single.npy" "$traj"
log "single in-process run: $tmp/single.npy ($(stat -c %s "$tmp/single.npy") bytes, sha256 $(sha256sum "$tmp/single.npy" | cut -c1-16))"

# ---- helpers ----------------------------------------------------------------------------
# State of one job (or of each task of an array job): "TASK STATE EXITCODE" lines.
job_states() {
    scontrol show job -o "$1" 2>/dev/null | awk '{
        t = "-"; s = "?"; e = "?"
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^ArrayTaskId=/) t = substr($i, 13)
            else if ($i ~ /^JobState=/) s = substr($i, 10)
            else if ($i ~ /^ExitCode=/) e = substr($i, 10)
        }
        print t, s, e }' | sort -n
}
# Wait until none of the given jobs is pending or running.
wait_jobs() {
    local deadline=$(( $(date +%s) + timeout_s )) ids=$1
    while [ -n "$(squeue -h -j "$ids" -t PENDING,RUNNING,CONFIGURING,COMPLETING 2>/dev/null)" ]; do
        [ "$(date +%s)" -lt $deadline ] || { squeue -j "$ids"; fail "jobs $ids not done after ${timeout_s} s"; }
        sleep 0.2
    done
}
# submit.sh as a user runs it; the only override is 1 CPU per shard (the .sbatch file asks
# for 4, this node has 2), so two shards run at a time. Everything else (time, memory, job
# names) comes from the #SBATCH lines of shard.sbatch and merge.sbatch.
submit() {
    bash "$here/submit.sh" --input "$traj" --config "$repo/configs/example.toml" --species 1,6 \
        --bin "$bin" --sbatch-arg=--partition=debug --shard-sbatch-arg=--cpus-per-task=1 "$@"
}
job_field() { scontrol show job -o "$1" | head -n 1 | tr ' ' '\n' | grep "^$2=" | cut -d= -f2-; }
check_ok() { checks=$((checks + 1)); log "check $checks passed: $*"; }
count_state() { job_states "$1" | awk -v s="$2" '$2 == s' | wc -l; }

# ---- 5. N shards + merge ----------------------------------------------------------------
for n in $shard_counts; do
    run=$tmp/run$n
    t0=$(date +%s.%N)
    submit --shards "$n" --out "$run" --merged "$run/merged.npy"
    # shellcheck disable=SC1091
    . "$run/jobs.env"
    wait_jobs "$ARRAY_JOB_ID,$MERGE_JOB_ID"
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    ok=$(count_state "$ARRAY_JOB_ID" COMPLETED)
    mstate=$(job_states "$MERGE_JOB_ID" | awk '{ print $2 }')
    log "N=$n: $ok/$n shard tasks COMPLETED, merge $mstate, ${dt} s from submit to done"
    [ "$ok" = "$n" ] || { job_states "$ARRAY_JOB_ID"; fail "N=$n: not every shard task completed"; }
    [ "$mstate" = COMPLETED ] || fail "N=$n: merge job $mstate"
    [ "$(find "$run/shards" -name 'shard_*.npz' | wc -l)" = "$n" ] || fail "N=$n: expected $n shard files"
    cmp "$tmp/single.npy" "$run/merged.npy" || fail "N=$n: merged.npy differs from the single run"
    check_ok "N=$n: merged.npy == single.npy byte for byte (cmp), sha256 $(sha256sum "$run/merged.npy" | cut -c1-16)"
    if [ "$n" = "$(echo "$shard_counts" | awk '{ print $1 }')" ]; then
        # The #SBATCH lines were read (trailing comments included).
        for j in "$ARRAY_JOB_ID" "$MERGE_JOB_ID"; do
            log "job $j: JobName=$(job_field "$j" JobName) TimeLimit=$(job_field "$j" TimeLimit) MinMemoryNode=$(job_field "$j" MinMemoryNode) NumCPUs=$(job_field "$j" NumCPUs)"
        done
        [ "$(job_field "$ARRAY_JOB_ID" JobName)" = anisoap-shard ] || fail "shard.sbatch's #SBATCH lines not applied"
        [ "$(job_field "$ARRAY_JOB_ID" TimeLimit)" = 01:00:00 ] || fail "shard.sbatch's --time not applied"
        [ "$(job_field "$MERGE_JOB_ID" JobName)" = anisoap-merge ] || fail "merge.sbatch's #SBATCH lines not applied"
        [ "$(job_field "$MERGE_JOB_ID" TimeLimit)" = 00:30:00 ] || fail "merge.sbatch's --time not applied"
        echo "---- $run/logs/shard_1.out ----"; cat "$run/logs/shard_1.out"
        echo "---- $run/logs/merge.out ----"; cat "$run/logs/merge.out"
    fi
done

# ---- 6. a failed shard stops the merge; rerunning that task recovers ---------------------
run=$tmp/runfail
mkdir -p "$run/shards"
bad=2
mkdir "$run/shards/shard_0000$bad.npz"   # compute cannot rename its output onto a directory
submit --shards 4 --out "$run" --merged "$run/merged.npy"
# shellcheck disable=SC1091
. "$run/jobs.env"
wait_jobs "$ARRAY_JOB_ID,$MERGE_JOB_ID"
log "failure run: shard states (task state exit):"
job_states "$ARRAY_JOB_ID" | sed 's/^/    /'
merge_line=$(scontrol show job -o "$MERGE_JOB_ID" | grep -o 'JobState=[^ ]* Reason=[^ ]*')
log "failure run: merge job $MERGE_JOB_ID: $merge_line"
[ "$(job_states "$ARRAY_JOB_ID" | awk -v k=$bad '$1 == k { print $2 }')" = FAILED ] || fail "shard $bad did not fail"
[ "$(count_state "$ARRAY_JOB_ID" COMPLETED)" = 3 ] || fail "the other 3 shards should have completed"
case "$merge_line" in *JobState=CANCELLED*DependencyNeverSatisfied*) ;; *) fail "merge not cancelled: $merge_line" ;; esac
[ ! -e "$run/merged.npy" ] || fail "a merged file exists although a shard failed"
check_ok "failure run: shard $bad FAILED, merge CANCELLED (DependencyNeverSatisfied), no merged file"
echo "---- $run/logs/shard_$bad.out ----"; cat "$run/logs/shard_$bad.out"
rmdir "$run/shards/shard_0000$bad.npz"
submit --shards 4 --out "$run" --merged "$run/merged.npy" --array "$bad"
# shellcheck disable=SC1091
. "$run/jobs.env"
wait_jobs "$ARRAY_JOB_ID,$MERGE_JOB_ID"
[ "$(job_states "$ARRAY_JOB_ID" | awk '{ print $2 }')" = COMPLETED ] || fail "rerun of shard $bad failed"
[ "$(job_states "$MERGE_JOB_ID" | awk '{ print $2 }')" = COMPLETED ] || fail "merge after the rerun failed"
cmp "$tmp/single.npy" "$run/merged.npy" || fail "merged.npy after the rerun differs from the single run"
check_ok "rerun with --array $bad: shard COMPLETED, merge COMPLETED, merged.npy == single.npy byte for byte"

passed=1
