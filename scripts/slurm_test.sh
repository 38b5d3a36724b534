#!/usr/bin/env bash
# Tests `doublewin study submit --slurm` on a real Slurm: starts munged (if none runs), slurmctld
# and slurmd on loopback with a private configuration in a temporary folder (nothing system-wide
# changes but munge's key), submits a small study as a 3-task worker array plus its report job,
# waits (bounded) and checks that the results equal those of a local one-process run with the
# same threads per worker. Every daemon it started is stopped by PID at the end, also on failure.
# A machine where the daemons cannot start fails the test, loudly, unless
# DOUBLEWIN_SKIP_SLURM_TEST=1 opts out.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$DW_ROOT"
if [ "${DOUBLEWIN_SKIP_SLURM_TEST:-0}" = 1 ]; then
  echo "[slurm] !!! SKIPPED: DOUBLEWIN_SKIP_SLURM_TEST=1 (the cluster path is untested on this machine) !!!"
  exit 0
fi
t0=$(date +%s)
exe="$DW_ROOT/target/release/doublewin"
cargo build --release --quiet --bin doublewin
D="$(mktemp -d /tmp/doublewin-slurm.XXXXXX)"
mkdir -p "$D"/{state,spool,log}
started=()
cleanup() {
  local rc=$?
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${started[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "[slurm] FAILED (exit $rc); daemon logs and job logs:"
    tail -n 20 "$D"/log/*.log "$D"/jobs/logs/*.log 2>/dev/null || true
  fi
  rm -rf "$D"
  exit $rc
}
trap cleanup EXIT
fail() { echo "[slurm] $*" >&2; exit 1; }

# munge: authentication between the Slurm daemons and clients.
if ! pgrep -x munged > /dev/null; then
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2> /dev/null
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  su -s /bin/sh munge -c /usr/sbin/munged || fail "munged did not start: the Slurm test cannot run here (DOUBLEWIN_SKIP_SLURM_TEST=1 opts out)"
  for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.2; done
  started+=("$(cat /run/munge/munged.pid)")
fi
munge -n | unmunge > /dev/null || fail "munge does not authenticate"

hn="$(hostname -s)"
cpus="$(nproc)"
# Free ports for this cluster's two daemons.
read -r p1 p2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
cat > "$D/slurm.conf" <<CONF
ClusterName=doublewin-test
SlurmctldHost=$hn(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SlurmctldPort=$p1
SlurmdPort=$p2
NodeName=$hn NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=$hn Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$D/slurm.conf"
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start (see $D/log/slurmctld.log)"
for _ in $(seq 50); do [ -s "$D/slurmctld.pid" ] && break; sleep 0.1; done
started+=("$(cat "$D/slurmctld.pid")")
slurmd -f "$SLURM_CONF" || fail "slurmd did not start (see $D/log/slurmd.log)"
for _ in $(seq 50); do [ -s "$D/slurmd.pid" ] && break; sleep 0.1; done
started+=("$(cat "$D/slurmd.pid")")
for _ in $(seq 60); do sinfo -h -o %t 2> /dev/null | grep -q idle && break; sleep 0.5; done
sinfo -h -o %t | grep -q idle || fail "the node did not come up: $(sinfo 2>&1)"
echo "[slurm] single-node cluster up in $(( $(date +%s) - t0 )) s ($cpus CPUs, ports $p1/$p2)"

# The study: the tiny profile cut to one source model, both IMP families, one seed (a few minutes).
"$exe" study show --profile tiny > "$D/tiny.json"
python3 - "$D/tiny.json" "$D/study.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["pretrainings"] = ["standard"]
s["seeds"] = [0]
s["fractions"] = [1.0]
s["controls"] = None
s["landscapes"] = None
json.dump(s, open(sys.argv[2], "w"), indent=1)
PY

"$exe" --threads 1 study submit --slurm --config "$D/study.json" --store "$D/store" --dir "$D/jobs" --out "$D/report" \
  --tasks 3 --cpus-per-task 1 --time 00:20:00 --mem 1G --submit | tee "$D/submit.txt"
report_job="$(grep -o 'report as job [0-9]*' "$D/submit.txt" | grep -o '[0-9]*$')"
[ -n "$report_job" ] || fail "no report job id in: $(cat "$D/submit.txt")"
deadline=$(( $(date +%s) + ${DOUBLEWIN_SLURM_TIMEOUT:-900} ))
while squeue -h | grep -q .; do
  [ "$(date +%s)" -lt "$deadline" ] || { squeue; scancel -u root || true; fail "the jobs did not finish within the timeout"; }
  sleep 2
done
[ -f "$D/report/results.json" ] || fail "the report job wrote no results"
ls "$D"/jobs/logs/worker-*.log > /dev/null || fail "no worker logs"
echo "[slurm] array + report done in $(( $(date +%s) - t0 )) s; workers:"
grep -h "worker done" "$D"/jobs/logs/worker-*.log

# The same study in one local process with the same threads per worker.
"$exe" --threads 1 study report --config "$D/study.json" --store "$D/local" --out "$D/local-report" > /dev/null
python3 - "$D/report/results.json" "$D/local-report/results.json" <<'PY'
import json, sys
def strip(v):
    # What differs by construction between two runs: timings and how many steps each process computed.
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ("seconds", "computed_steps", "stored_steps", "elapsed", "wall_seconds")}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
a, b = (strip(json.load(open(p))) for p in sys.argv[1:])
if a != b:
    for k in a:
        if a.get(k) != b.get(k):
            print(f"[slurm] results differ in {k!r}", file=sys.stderr)
    sys.exit(1)
print(f"[slurm] the Slurm run's results equal the local run's ({len(a.get('transfers', []))} transfers)")
PY
# The reports' figures, as files: the figure check of the test command (scripts/check_figures.py).
python3 "$here/check_figures.py" "$D/report" "$D/local-report"
echo "[slurm] test passed in $(( $(date +%s) - t0 )) s"
