#!/usr/bin/env bash
# The Slurm drop-in beside Slurm itself, on this machine, in one run:
#
#  1. `sbatch` one process per submission, submitted one after another by a
#     single shell loop: Trestle's shim (against `trestle up`) and Slurm's
#     own sbatch (the private cluster of scripts/slurm.sh), RUNS times each,
#     alternating. Prints submissions/s per run and the medians.
#  2. `squeue --me -h` with JOBS of the user's jobs pending (a disabled
#     queue holds them): seconds to print the whole listing; then
#     `squeue -j ID` and `sacct -j ID` in ms (median of 20 calls).
#
# usage: bench/slurm_dropin.sh [N]   N submissions per sbatch run (default 500)
# env:   TRESTLE_BIN=path   a release binary (default: build one)
#        RUNS=5             runs per side
#        JOBS=100000        jobs pending for the squeue figure (0 skips)
#        SLURM=1            also run Slurm's sbatch (0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
RUNS=${RUNS:-5}
JOBS=${JOBS:-100000}
SLURM=${SLURM:-1}

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "commit: $(git rev-parse --short HEAD)"
if [ -n "${TRESTLE_BIN:-}" ]; then
  BIN=$TRESTLE_BIN
else
  cargo build --release -p trestle -q
  BIN=$PWD/target/release/trestle
fi

dir=$(mktemp -d)
cleanup() {
  [ -n "${up_pid:-}" ] && kill -INT "$up_pid" 2>/dev/null || true
  pkill -KILL -f -- "$dir" 2>/dev/null || true
  [ -n "${up_pid:-}" ] && wait "$up_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\n[queues.held]\nenabled = false\n' "$port" "$dir" >"$dir/trestle.toml"
export HOME=$dir XDG_CONFIG_HOME=$dir/config TRESTLE_LOG=warn TRESTLE_ISOLATION=none
(cd "$dir" && "$BIN" up --config "$dir/trestle.toml" >"$dir/up.out" 2>"$dir/up.err") &
up_pid=$!
for _ in $(seq 100); do grep -q "running at" "$dir/up.out" 2>/dev/null && break; sleep 0.1; done
"$BIN" slurm install-shims "$dir/shims" >/dev/null
SHIM=$dir/shims/sbatch
printf '#!/bin/sh\n#SBATCH --job-name=bench\n#SBATCH --time=00:01:00\ntrue\n' >"$dir/job.sh"

loop() {  # loop SBATCH EXTRA...: N submissions one after another; prints jobs/s
  local sbatch=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  for _ in $(seq "$N"); do "$sbatch" "$@" "$dir/job.sh" >/dev/null; done
  t1=$(date +%s.%N)
  python3 -c "print(f'{$N / ($t1 - $t0):.0f}')"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

slurm_ok=0
if [ "$SLURM" = 1 ]; then
  bash scripts/slurm.sh start >/dev/null 2>&1 && slurm_ok=1
  eval "$(bash scripts/slurm.sh env)"
fi
: >"$dir/trestle.runs"
: >"$dir/slurm.runs"
for r in $(seq "$RUNS"); do
  t=$(loop "$SHIM" -p held)
  echo "run $r: trestle shim sbatch: $t submissions/s"
  echo "$t" >>"$dir/trestle.runs"
  if [ "$slurm_ok" = 1 ]; then
    s=$(loop sbatch --hold)
    echo "run $r: slurm sbatch: $s submissions/s"
    echo "$s" >>"$dir/slurm.runs"
    scancel --user="$(id -un)" 2>/dev/null || true
  fi
done
echo "median: trestle shim sbatch $(median <"$dir/trestle.runs") submissions/s ($RUNS runs of $N)"
if [ "$slurm_ok" = 1 ]; then
  echo "median: slurm sbatch $(median <"$dir/slurm.runs") submissions/s ($RUNS runs of $N)"
fi

if [ "$JOBS" -gt 0 ]; then
  token=$(awk -F'"' '/^token/{print $2}' "$dir/config/trestle/client.toml")
  python3 - "$port" "$token" "$JOBS" <<'EOF'
import json, sys, urllib.request
port, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
job = {"command": ["true"], "queue": "held", "name": "pending"}
left = n
while left > 0:
    k = min(1000, left)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/jobs/batch",
        data=json.dumps({"jobs": [job] * k}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST")
    urllib.request.urlopen(req).read()
    left -= k
EOF
  sq=$dir/shims/squeue
  t0=$(date +%s.%N)
  lines=$("$sq" --me -h | wc -l)
  t1=$(date +%s.%N)
  python3 -c "print(f'squeue --me -h: {$lines} lines in {$t1 - $t0:.2f} s')"
  id=$("$SHIM" --parsable -p held "$dir/job.sh")
  for cmd in "squeue -j $id" "sacct -j $id"; do
    : >"$dir/ms"
    for _ in $(seq 20); do
      t0=$(date +%s%N)
      "$dir/shims/${cmd%% *}" ${cmd#* } >/dev/null
      t1=$(date +%s%N)
      echo $(((t1 - t0) / 1000000)) >>"$dir/ms"
    done
    echo "$cmd with $JOBS jobs held: median $(median <"$dir/ms") ms (20 calls)"
  done
fi
