#!/usr/bin/env bash
# End-to-end test of the HTCondor path on this machine: a real personal HTCondor pool
# (collector, negotiator, schedd, startd on 127.0.0.1) runs the DAG that submit.sh writes,
# and the merged output is compared byte for byte with the single in-process run.
#
#   bash scripts/cluster/htcondor/local_test.sh [--shards "4 16"] [--no-cache]
#   bash scripts/cluster/htcondor/local_test.sh 2>&1 | tee results/cluster/htcondor_local_test.log
#
# Debian bookworm (this project's machines) has no HTCondor package; Debian trixie has
# htcondor 23.9. The test therefore builds a minimal trixie root with debootstrap (cached in
# $ANISOAP_HTCONDOR_ROOT, default /var/tmp/anisoap-htcondor-trixie: ~60 s and ~45 s of
# downloads the first time, nothing later), installs htcondor in it and runs the pool inside
# a chroot. Needs root (debootstrap, chroot, mount). The jobs run as an unprivileged user
# (HTCondor refuses root's jobs). Steps:
#   1. debootstrap trixie + apt-get install htcondor (only when the root is not cached)
#   2. personal pool config (2 CPUs, no /tmp namespaces: they need more than a chroot), start
#      condor_master, wait for the slot
#   3. copy the CLI binary (built here, or $ANISOAP_CANDLE_BIN), the htcondor scripts and the
#      example hypers in; generate 64 frames x 20 particles x 2 species; single run (.npy)
#   4. for each N: submit.sh --shards N (DAG of N shard nodes + merge), wait for DAGMan,
#      check the DAG succeeded, cmp merged.npy single.npy
#   5. failure path: one shard node given a bad compute argument -> that shard fails, the
#      merge never runs, DAGMan writes a rescue DAG; the DAG fixed and resubmitted with the
#      same condor_submit_dag: only that shard and the merge run, merged equals the single run
#   6. the pool is stopped (fast shutdown) and the mounts undone on exit, whatever happened
# The last line is "PASS: ..." or "FAIL: ..." (exit status 0 or 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
shard_counts="4 16"
keep_root=1
root=${ANISOAP_HTCONDOR_ROOT:-/var/tmp/anisoap-htcondor-trixie}
mirror=${ANISOAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
timeout_s=${ANISOAP_HTCONDOR_TIMEOUT:-240}
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) shard_counts=$2; shift 2 ;;
        --no-cache) keep_root=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[htcondor-test +$(elapsed)s] $*"; }
fail() { log "error: $*" >&2; exit 1; }

passed=0 checks=0 master_pid="" mounted=()
# Run a command in the chroot as root, or as the job user, with a clean environment.
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
as_user() { in_root runuser -u anisoap -- /usr/bin/env -i PATH=/usr/bin:/bin HOME=/home/anisoap \
    LANG=C.UTF-8 bash -c "cd /home/anisoap && $1"; }
check_ok() { checks=$((checks + 1)); log "check $checks passed: $*"; }

cleanup() {
    rc=$?
    set +e
    if [ $passed != 1 ] && [ -d "$root/var/log/condor" ]; then
        echo "---- pool logs (errors) ----"
        grep -hiE 'error|fail|hold' "$root"/var/log/condor/{SchedLog,StartLog,StarterLog.slot*,ShadowLog} 2>/dev/null | tail -n 30
        for f in "$root"/home/anisoap/run*/anisoap.dag.dagman.out; do
            [ -f "$f" ] && { echo "== $f"; tail -n 15 "$f"; }
        done
    fi
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        kill -QUIT "$master_pid"   # HTCondor's fast shutdown: jobs and daemons stop now
        for _ in $(seq 100); do kill -0 "$master_pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$master_pid" 2>/dev/null && kill -9 "$master_pid"
        wait "$master_pid" 2>/dev/null
        log "pool stopped"
    fi
    # Any pool daemon that outlived its master (they all run inside $root): end it by pid.
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}"; done
    if [ $keep_root = 0 ] && [ -d "$root" ]; then rm -rf --one-file-system "$root"; fi
    if [ $passed = 1 ]; then
        echo "htcondor-local: $checks passed, 0 failed"
        echo "PASS: HTCondor DAG shards ($shard_counts + failure/rescue) merged equal the single run byte for byte ($(elapsed) s)"
        exit 0
    fi
    echo "htcondor-local: $checks passed, 1 failed"
    echo "FAIL: HTCondor local test (exit $rc, $(elapsed) s)"
    exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot and mount need it)"

# ---- 1. a trixie root with htcondor -------------------------------------------------------
if [ ! -x "$root/usr/sbin/condor_master" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
            || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    }
    rm -rf --one-file-system "$root"
    log "debootstrap --variant=minbase trixie $root"
    debootstrap --variant=minbase trixie "$root" "$mirror" > "/tmp/anisoap-debootstrap.log" 2>&1 \
        || { tail -n 20 /tmp/anisoap-debootstrap.log; fail "debootstrap failed"; }
    log "apt-get install htcondor (in the trixie root)"
    in_root bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends htcondor' \
        > /tmp/anisoap-htcondor-apt.log 2>&1 || { tail -n 20 /tmp/anisoap-htcondor-apt.log; fail "installing htcondor failed"; }
else
    log "reusing the trixie root $root"
fi
log "$(in_root condor_version | head -n 1)"

# ---- 2. a personal pool -------------------------------------------------------------------
for m in proc dev; do
    if ! mountpoint -q "$root/$m"; then
        if [ $m = proc ]; then mount -t proc proc "$root/proc"; else mount --bind /dev "$root/dev"; fi
        mounted+=("$root/$m")
    fi
done
cp /etc/hosts "$root/etc/hosts"   # the pool looks up this host's name
cat > "$root/etc/condor/config.d/50-anisoap-test.config" <<'EOF'
# Personal pool for local_test.sh: every daemon on this machine, 127.0.0.1 only.
use ROLE : Personal
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
NUM_CPUS = 2
# A chroot cannot give jobs private /tmp mount namespaces.
MOUNT_UNDER_SCRATCH =
# A test pool: match, start and notice jobs quickly.
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 5
UPDATE_INTERVAL = 5
DAGMAN_USER_LOG_SCAN_INTERVAL = 1
EOF
in_root bash -c 'id anisoap >/dev/null 2>&1 || useradd -m anisoap'
in_root bash -c 'rm -rf /home/anisoap/run* /var/log/condor/*'
[ -z "$(in_root condor_status -af Name 2>/dev/null)" ] || fail "an HTCondor pool already answers on this host"
# In the foreground (-f) and in the background here, so that $! is the master's own pid
# (chroot and env exec it); its daemons follow it when it stops.
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 condor_master -f > /dev/null 2>&1 &
master_pid=$!
for i in $(seq 150); do
    kill -0 "$master_pid" 2>/dev/null || fail "condor_master exited"
    slots=$(in_root condor_status -af Name 2>/dev/null | wc -l || true)
    [ "$slots" -ge 1 ] && as_user 'condor_q -totals >/dev/null 2>&1' && break
    [ "$i" = 150 ] && fail "no slot after 30 s"
    sleep 0.2
done
log "pool up (condor_master pid $master_pid): $(in_root condor_status -af Name Cpus Memory | tr '\n' ' ')"

# ---- 3. binary, scripts, input, single run ------------------------------------------------
if [ -n "${ANISOAP_CANDLE_BIN:-}" ]; then
    bin=$ANISOAP_CANDLE_BIN
else
    log "cargo build --release -p anisoap-candle-cli"
    (cd "$repo" && cargo build --release --quiet -p anisoap-candle-cli)
    bin=$repo/target/release/anisoap-candle
fi
[ -x "$bin" ] || fail "no binary at $bin"
rm -rf "$root/opt/anisoap"
mkdir -p "$root/opt/anisoap/scripts/cluster" "$root/opt/anisoap/bin" "$root/opt/anisoap/configs"
cp -r "$here" "$root/opt/anisoap/scripts/cluster/htcondor"
cp "$bin" "$root/opt/anisoap/bin/anisoap-candle"
cp "$repo/configs/example.toml" "$root/opt/anisoap/configs/"
log "binary $bin ($(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo 'no git')) and scripts copied to /opt/anisoap"
as_user '/opt/anisoap/bin/anisoap-candle generate --kind liquid --particles 20 --species 2 --frames 64 --periodic --density 0.05 --seed 11 -o traj.xyz'
as_user '/opt/anisoap/bin/anisoap-candle compute --config /opt/anisoap/configs/example.toml --species 1,6 -o single.npy traj.xyz'
home=$root/home/anisoap
log "single in-process run: single.npy ($(stat -c %s "$home/single.npy") bytes, sha256 $(sha256sum "$home/single.npy" | cut -c1-16))"

# submit.sh as a user runs it, with this pool's sizes: 1 CPU per shard, small memory/disk,
# no automatic retries (so that the failure test fails at once).
submit() {
    as_user "bash /opt/anisoap/scripts/cluster/htcondor/submit.sh --input traj.xyz \
        --config /opt/anisoap/configs/example.toml --species 1,6 --bin /opt/anisoap/bin/anisoap-candle \
        --var cpus=1 --var memory=512MB --var disk=100MB --var merge_memory=512MB --var merge_disk=100MB \
        --var retries=0 $*"
}
# Wait for the DAGMan job of run directory $1 to leave the queue; print its exit code.
wait_dag() {
    local run=$1 deadline=$(( $(date +%s) + timeout_s )) n
    while :; do
        n=$(as_user "condor_q -af:j DAGManJobId Cmd 2>/dev/null | grep -c . || true")
        [ -f "$home/$run/anisoap.dag.metrics" ] && [ "$n" = 0 ] && break
        [ "$(date +%s)" -lt $deadline ] || { as_user 'condor_q -dag -nobatch'; fail "$run: DAG not done after ${timeout_s} s"; }
        sleep 0.5
    done
    grep -o '"exitcode":[0-9]*' "$home/$run/anisoap.dag.metrics" | cut -d: -f2
}
dag_jobs() { # "node exit-code" of every finished job of the DAGMan job with id $1
    as_user "condor_history -constraint 'DAGManJobId == $1' -af DAGNodeName ExitCode" | sort
}
dagman_id() { grep -o 'submitted to cluster [0-9]*' "$home/$1/submit.out" | tail -n 1 | awk '{ print $4 }'; }  # [0-9]* drops the final dot

# ---- 4. N shard nodes + merge -------------------------------------------------------------
for n in $shard_counts; do
    run=run$n
    t0=$(date +%s.%N)
    submit "--shards $n --out $run --merged $run/merged.npy" > "$home/submit.tmp"
    mkdir -p "$home/$run"; mv "$home/submit.tmp" "$home/$run/submit.out"
    code=$(wait_dag "$run")
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    jobs=$(dag_jobs "$(dagman_id "$run")")
    nok=$(echo "$jobs" | awk '$2 == 0' | wc -l)
    log "N=$n: DAG exit code $code, $nok/$((n + 1)) node jobs exited 0, ${dt} s from submit to done"
    [ "$code" = 0 ] || fail "N=$n: DAG failed"
    [ "$nok" = $((n + 1)) ] || { echo "$jobs"; fail "N=$n: not every node job succeeded"; }
    cmp "$home/single.npy" "$home/$run/merged.npy" || fail "N=$n: merged.npy differs from the single run"
    check_ok "N=$n: merged.npy == single.npy byte for byte (cmp), sha256 $(sha256sum "$home/$run/merged.npy" | cut -c1-16)"
    if [ "$n" = "$(echo "$shard_counts" | awk '{ print $1 }')" ]; then
        echo "---- $run/anisoap.dag ----"; sed "s|$home/||g" "$home/$run/anisoap.dag"
        echo "---- $run/logs/shard_1.out + .err ----"; cat "$home/$run/logs/shard_1.out" "$home/$run/logs/shard_1.err"
        echo "---- $run/logs/merge.out + .err ----"; cat "$home/$run/logs/merge.out" "$home/$run/logs/merge.err"
    fi
done

# ---- 5. a failed shard stops the merge; the rescue DAG reruns only what is missing --------
run=runfail
bad=2
submit "--shards 4 --out $run --merged $run/merged.npy --dry-run" > /dev/null
cp "$home/$run/anisoap.dag" "$home/$run/anisoap.dag.good"
sed -i "s/^VARS shard$bad shard_index=\"$bad\" count=\"1\"\$/& compute_args=\"--no-such-flag\"/" "$home/$run/anisoap.dag"
grep -q 'no-such-flag' "$home/$run/anisoap.dag" || fail "could not inject the failure"
as_user "cd $run && condor_submit_dag anisoap.dag" > "$home/$run/submit.out"
code=$(wait_dag "$run")
jobs=$(dag_jobs "$(dagman_id "$run")")
log "failure run: DAG exit code $code; node jobs (node exit):"
echo "$jobs" | awk '{ print "    " $0 }'
[ "$code" != 0 ] || fail "the DAG with a failing shard succeeded"
[ "$(echo "$jobs" | awk -v k="shard$bad" '$1 == k && $2 != 0' | wc -l)" = 1 ] || fail "shard $bad did not fail"
[ "$(echo "$jobs" | awk '$2 == 0' | wc -l)" = 3 ] || fail "the other 3 shards should have succeeded"
echo "$jobs" | grep -q '^merge ' && fail "the merge ran although a shard failed"
[ ! -e "$home/$run/merged.npy" ] || fail "a merged file exists although a shard failed"
[ -f "$home/$run/anisoap.dag.rescue001" ] || fail "no rescue DAG"
check_ok "failure run: shard $bad failed, merge never ran, no merged file, rescue DAG anisoap.dag.rescue001 written"
echo "---- $run/logs/shard_$bad.err ----"; cat "$home/$run/logs/shard_$bad.err"
echo "---- $run/anisoap.dag.rescue001 (DONE lines) ----"; grep '^DONE' "$home/$run/anisoap.dag.rescue001"
rm -f "$home/$run/anisoap.dag.metrics"
cp "$home/$run/anisoap.dag.good" "$home/$run/anisoap.dag"   # the cause fixed
as_user "cd $run && condor_submit_dag anisoap.dag" > "$home/$run/submit.out"
grep -i rescue "$home/$run/submit.out" | sed 's/^/    /' || true
code=$(wait_dag "$run")
jobs=$(dag_jobs "$(dagman_id "$run")")
log "rescue run: DAG exit code $code; node jobs run this time: $(echo "$jobs" | awk '{ printf "%s(exit %s) ", $1, $2 }')"
[ "$code" = 0 ] || fail "the rescue DAG failed"
[ "$(echo "$jobs" | awk '{ print $1 }' | tr '\n' ' ')" = "merge shard$bad " ] || fail "the rescue DAG should run shard$bad and merge only"
cmp "$home/single.npy" "$home/$run/merged.npy" || fail "merged.npy after the rescue differs from the single run"
check_ok "rescue run (same condor_submit_dag): only shard$bad and merge ran, merged.npy == single.npy byte for byte"

passed=1
