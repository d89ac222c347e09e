#!/usr/bin/env bash
# Benchmarks Trestle against the raw process-spawn rate, HyperQueue and a
# local Slurm on this machine, in one run. Prints one line per figure;
# docs/benchmarks.md records the results with the machine and the command.
#
# usage: bench/run.sh [N]          N jobs per throughput run (default 20000)
# env:   TRESTLE_BIN=path          use this release binary instead of building one
#        BACKLOG=1000000           jobs queued for the "1M queued" figure (0 skips)
#        PEERS=1                   also run HyperQueue and Slurm (../shared/peers)
#        PEER_N=2000               jobs for the peers (Slurm is slow)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
BACKLOG=${BACKLOG:-1000000}
PEERS=${PEERS:-1}
PEER_N=${PEER_N:-2000}
PEER_DIR=${PEER_DIR:-../shared/peers}

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "commit: $(git rev-parse --short HEAD)"
if [ -n "${TRESTLE_BIN:-}" ]; then
  BIN=$TRESTLE_BIN            # a release binary built elsewhere
else
  cargo build --release -p trestle -q
  BIN=$PWD/target/release/trestle
fi

# 1. The raw process-spawn rate: the ceiling for any scheduler here.
t0=$(date +%s.%N)
seq "$N" | xargs -P "$(nproc)" -I{} /bin/true
t1=$(date +%s.%N)
echo "raw spawn: $(awk "BEGIN{printf \"%.1f\", $N/($t1-$t0)}") jobs/s (seq $N | xargs -P $(nproc) -I{} /bin/true)"

# 2. Trestle on the embedded default (SQLite, local workers).
run_trestle() {  # run_trestle LABEL BACKLOG [extra trestle.toml lines]
  local label=$1 backlog=$2 extra=${3:-}
  local dir
  dir=$(mktemp -d /tmp/trestle-bench.XXXXXX)
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\n%s\n' "$port" "$dir" "$extra" >"$dir/trestle.toml"
  (cd "$dir" && HOME=$dir XDG_CONFIG_HOME=$dir/config TRESTLE_LOG=warn \
     "$BIN" up --config "$dir/trestle.toml" >"$dir/up.out" 2>"$dir/up.err") &
  local up_pid=$!
  for _ in $(seq 100); do grep -q "running at" "$dir/up.out" 2>/dev/null && break; sleep 0.1; done
  local spid
  spid=$(pgrep -f -- "up --config $dir/trestle.toml" | head -n 1)
  local out
  out=$(cd "$dir" && HOME=$dir XDG_CONFIG_HOME=$dir/config "$BIN" bench --jobs "$N" --backlog "$backlog" --latency-jobs 500)
  echo "$out" | sed "s/^/trestle [$label]: /"
  echo "trestle [$label]: server peak RSS $(awk '/VmHWM/{printf "%.0f MiB", $2/1024}' /proc/"$spid"/status)"
  kill -INT "$up_pid" 2>/dev/null || true
  pkill -KILL -f -- "$dir" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  rm -rf "$dir"
}
run_trestle "1k queued" 1000
run_trestle "prefetch 0" 1000 $'[local]\nprefetch = 0'
if [ "$BACKLOG" -gt 0 ]; then
  run_trestle "$BACKLOG queued" "$BACKLOG"
fi

# 3. Peers on the same machine.
if [ "$PEERS" = 1 ]; then
  if [ ! -x /tmp/trestle-peers/hq-venv/bin/python ]; then
    python3 -m venv /tmp/trestle-peers/hq-venv
    /tmp/trestle-peers/hq-venv/bin/pip install -q hyperqueue
  fi
  /tmp/trestle-peers/hq-venv/bin/python "$PEER_DIR/hq-bench.py" "$PEER_N" | sed 's/^/hyperqueue: /'
  PROFILE=fast bash "$PEER_DIR/slurm-up.sh" start >/dev/null 2>&1
  bash "$PEER_DIR/slurm-bench.sh" "$PEER_N" both | sed 's/^/slurm (fast profile): /'
  bash "$PEER_DIR/slurm-up.sh" stop >/dev/null 2>&1 || true
fi
