#!/usr/bin/env bash
# A private single-node Slurm cluster for Trestle's tests and benchmarks.
#
#   scripts/slurm.sh [start|stop|status|env]
#
# `start` installs the Debian packages when they are missing (slurmctld,
# slurmd, slurm-client, munge), then runs its own munged, slurmctld and
# slurmd directly (no systemd needed), all under $TRESTLE_SLURM_ROOT. It
# never touches /etc/slurm or the system's munged: the cluster has its own
# configuration file, ports and munge socket, so it can run beside another
# Slurm on the same machine. Clients find it through SLURM_CONF, which
# `env` prints. Running `start` again is cheap when everything is up.
#
# Environment:
#   TRESTLE_SLURM_ROOT  state, logs, configuration (default /var/lib/trestle-slurm)
#   TRESTLE_SLURM_PORT  slurmctld port; slurmd uses the next one (default 6917)
#   TRESTLE_SLURM_CPUS  CPUs of the node (default: all cores)
set -euo pipefail

ACTION=${1:-start}
ROOT=${TRESTLE_SLURM_ROOT:-/var/lib/trestle-slurm}
PORT=${TRESTLE_SLURM_PORT:-6917}
NODE_CPUS=${TRESTLE_SLURM_CPUS:-$(nproc)}
export SLURM_CONF=$ROOT/etc/slurm.conf
MUNGE=$ROOT/munge
SOCKET=$MUNGE/socket
PIDS=$ROOT/run

note() { printf 'slurm.sh: %s\n' "$*" >&2; }

running() {  # running PIDFILE: the process named in the file is alive
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

halt() {  # halt PIDFILE: TERM the process in the file, KILL it after 10 s
  local pid
  running "$1" || { rm -f "$1"; return 0; }
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$1"
}

case "$ACTION" in
  env)
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
    ;;
  stop)
    halt "$PIDS/slurmd.pid"
    halt "$PIDS/slurmctld.pid"
    halt "$MUNGE/munged.pid"
    note "stopped"
    exit 0
    ;;
  status)
    for d in munged:$MUNGE/munged.pid slurmctld:$PIDS/slurmctld.pid slurmd:$PIDS/slurmd.pid; do
      if running "${d#*:}"; then echo "${d%%:*} running (pid $(cat "${d#*:}"))"; else echo "${d%%:*} stopped"; fi
    done
    sinfo 2>/dev/null || true
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: $0 [start|stop|status|env]" >&2
    exit 2
    ;;
esac

# 1. Packages.
missing=()
for tool in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  note "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# On a machine that runs systemd, the packaged units would start a second
# cluster from /etc/slurm; they are not needed here (and fail without a config).

# 2. A private munged with its own key and socket.
mkdir -p "$MUNGE" "$PIDS" "$ROOT/etc" "$ROOT/state" "$ROOT/spool" "$ROOT/log"
if [ ! -s "$MUNGE/munge.key" ]; then
  head -c 1024 /dev/urandom >"$MUNGE/munge.key"
fi
chown -R munge:munge "$MUNGE"
chmod 0755 "$MUNGE"   # clients need to reach the socket
chmod 0400 "$MUNGE/munge.key"
munge_ok() { munge --socket="$SOCKET" -n 2>/dev/null | unmunge --socket="$SOCKET" >/dev/null 2>&1; }
if ! munge_ok; then
  halt "$MUNGE/munged.pid"
  rm -f "$SOCKET" "$SOCKET.lock"
  note "starting munged"
  runuser -u munge -- /usr/sbin/munged --socket="$SOCKET" --key-file="$MUNGE/munge.key" \
    --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/seed"
  for _ in $(seq 100); do munge_ok && break; sleep 0.1; done
  munge_ok || { note "munged does not answer on $SOCKET (see $MUNGE/munged.log)"; exit 1; }
fi

# 3. The configuration. Memory: what the host has, less 1 GiB for itself.
mem_mib=$(awk '/^MemTotal:/ { m = int($2 / 1024) - 1024; print (m < 512 ? 512 : m) }' /proc/meminfo)
conf=$(cat <<CONF
# Written by Trestle's scripts/slurm.sh; edits are overwritten.
ClusterName=trestle
SlurmctldHost=localhost
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0,default_queue_depth=500,bf_interval=2
MaxJobCount=50000
MinJobAge=120
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
)
if [ ! -f "$SLURM_CONF" ] || [ "$(cat "$SLURM_CONF")" != "$conf" ]; then
  printf '%s\n' "$conf" >"$SLURM_CONF"
  note "wrote $SLURM_CONF"
  halt "$PIDS/slurmd.pid"
  halt "$PIDS/slurmctld.pid"
fi

# 4. The daemons. A fresh slurmctld forgets jobs of earlier runs (-c).
if ! running "$PIDS/slurmctld.pid"; then
  note "starting slurmctld on port $PORT"
  slurmctld -c -i
fi
for _ in $(seq 150); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
scontrol ping 2>/dev/null | grep -q 'is UP' || { note "slurmctld does not answer (see $ROOT/log/slurmctld.log)"; exit 1; }
if ! running "$PIDS/slurmd.pid"; then
  note "starting slurmd"
  slurmd -N localhost
fi
state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  case "$state" in idle* | mixed* | allocated*) break ;; esac
  sleep 0.2
done
case "$state" in
  down* | drain*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
esac
state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
case "$state" in
  idle* | mixed* | allocated*) ;;
  *) note "node localhost is '$state' (see $ROOT/log/slurmd.log)"; exit 1 ;;
esac
note "up: SLURM_CONF=$SLURM_CONF, node localhost $state, $NODE_CPUS CPUs, ${mem_mib} MiB"
