#!/usr/bin/env bash
# End-to-end test of `lmech sweep` under a real Slurm: installs Debian's
# slurm-wlm and munge (when missing), starts munged, slurmctld and slurmd on
# localhost as a one-node cluster, submits examples/slurm/sweep_array.sbatch
# as a 3-task job array over a small sweep, with no --shard: the tasks share
# the one store dynamically. It waits for them, merges the store with
# `lmech sweep report` and checks that every run of the grid was trained
# exactly once (by the tasks' logs), passes `lmech sweep check` and is in
# the report exactly once. Needs root on a throwaway Debian machine (it writes
# /etc/slurm/slurm.conf); it stops the daemons it started.
#
#   scripts/slurm-test.sh            # builds target/release/lmech if missing
#   LMECH=/path/to/lmech scripts/slurm-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
LMECH=${LMECH:-$root/target/release/lmech}
if [ ! -x "$LMECH" ]; then
    cargo build --release
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm-test: needs root (it installs and configures Slurm)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

work=$(mktemp -d /tmp/lmech-slurm-test.XXXXXX)
started=()
passed=0
cleanup() {
    if [[ " ${started[*]-} " == *" slurm "* ]]; then
        scontrol shutdown >/dev/null 2>&1 || true
        for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid"; do
            [ -f "$pidfile" ] || continue
            pid=$(cat "$pidfile")
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill "$pid" 2>/dev/null || true
        done
    fi
    if [[ " ${started[*]-} " == *" munge "* ]]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    fi
    # Logs stay for a failed run.
    if [ "$passed" = 1 ]; then
        rm -rf "$work"
    else
        echo "slurm-test: logs in $work" >&2
    fi
}
trap cleanup EXIT

# munge: the key and the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    started+=(munge)
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n | unmunge >/dev/null

# A one-node cluster on this machine; daemons run as root, no cgroups.
host=$(hostname -s)
cpus=$(nproc)
mkdir -p /etc/slurm "$work/spool/ctld" "$work/spool/d"
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=lmechtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/spool/ctld
SlurmdSpoolDir=$work/spool/d
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
started+=(slurm)
slurmctld -c
slurmd -c
for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
if [ "$state" != idle ]; then
    echo "slurm-test: node $host is '${state:-unknown}', not idle" >&2
    cat "$work/slurmctld.log" "$work/slurmd.log" >&2 || true
    exit 1
fi

# A 12-run sweep in 6 ensembles, for 3 workers.
cat > "$work/sweep.toml" <<'EOF'
name = "slurm-test"
max_ensemble = 2
[base]
[base.model]
width = 32
[base.data]
n_train = 300
seed = 0
[base.train]
steps = 50
log_every = 10
[axes]
"model.width" = [16, 32]
"optim.lr" = [0.05, 0.1, 0.2]
seed = [0, 1]
EOF
out=$work/store
cd "$work"
SWEEP=$work/sweep.toml OUT=$out LMECH=$LMECH DEVICE=cpu \
    timeout 300 sbatch --wait --array=0-2 --cpus-per-task=1 \
    "$root/examples/slurm/sweep_array.sbatch"
cat "$work"/lmech-sweep-*.log
"$LMECH" sweep report "$out"
"$LMECH" sweep check "$out"
"$LMECH" sweep status "$out"
rows=$(($(wc -l < "$out/report.csv") - 1))
runs=$(ls "$out/runs" | wc -l)
workers=$(grep -h "^worker " "$work"/lmech-sweep-*.log)
echo "$workers"
# Each task's progress lines name the runs it trained: "[k/12] <id>: finished".
trained=$(grep -ho "\] [^ ]*: \(finished\|diverged\)" "$work"/lmech-sweep-*.log | sort)
if [ "$rows" != 12 ] || [ "$runs" != 12 ] || [ "$(echo "$workers" | wc -l)" != 3 ]; then
    echo "slurm-test: FAILED: $rows report rows, $runs committed runs (want 12), 3 workers" >&2
    exit 1
fi
if [ "$(echo "$trained" | wc -l)" != 12 ] || [ -n "$(echo "$trained" | uniq -d)" ]; then
    echo "slurm-test: FAILED: runs were not trained exactly once each:" >&2
    echo "$trained" >&2
    exit 1
fi
passed=1
echo "slurm-test: ok (12 runs shared by 3 array tasks without --shard, each trained once, merged by lmech sweep report)"
