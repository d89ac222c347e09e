#!/usr/bin/env bash
# Throughput of the same trivial jobs through Slurm pilots (a Trestle
# `slurm` compute environment) and through plain sbatch, on the private
# single-node Slurm of scripts/slurm.sh. Prints one line per figure;
# docs/benchmarks.md ("Through Slurm pilots") records the results.
#
#   scripts/bench-slurm.sh [N]          N jobs per run (default 1000)
#
# env: TRESTLE_BIN   a prebuilt release binary (default: build one)
#      PILOT_CPUS    CPUs of one pilot (default: all CPUs of the node)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
./scripts/slurm.sh start
eval "$(./scripts/slurm.sh env)"
NODE_CPUS=$(sinfo -h -N -o %c | head -n 1)
PILOT_CPUS=${PILOT_CPUS:-$NODE_CPUS}
if [ -z "${TRESTLE_BIN:-}" ]; then
  cargo build --release -p trestle -q
  TRESTLE_BIN=$PWD/target/release/trestle
fi

now() { date +%s.%N; }
rate() { awk "BEGIN { printf \"%.1f\", $1 / ($3 - $2) }"; }
queue_empty() { [ -z "$(squeue -h -o %i 2>/dev/null | head -n 1)" ]; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); Slurm $(sinfo -V | cut -d' ' -f2), node with $NODE_CPUS CPUs"
echo "commit: $(git rev-parse --short HEAD); load before: $(load)"
while ! queue_empty; do sleep 0.5; done

# 1. Plain sbatch: one Slurm job per job, submitted one after another.
t0=$(now)
for ((i = 0; i < N; i++)); do
  sbatch -Q --parsable -c 1 --mem=256M -o /dev/null -e /dev/null -J plain --wrap true >/dev/null
done
t1=$(now)
while ! queue_empty; do sleep 0.2; done
t2=$(now)
echo "sbatch, one job each: $(rate "$N" "$t0" "$t2") jobs/s ($N jobs; submit $(awk "BEGIN{printf \"%.1f\", $t1-$t0}")s, until the queue is empty $(awk "BEGIN{printf \"%.1f\", $t2-$t0}")s; load $(load))"

# 2. Plain sbatch as one job array (Slurm's fastest way to submit many).
t0=$(now)
sbatch -Q --parsable -c 1 --mem=256M -o /dev/null -e /dev/null -J array --array=1-"$N" --wrap true >/dev/null
while ! queue_empty; do sleep 0.2; done
t2=$(now)
echo "sbatch --array=1-$N: $(rate "$N" "$t0" "$t2") jobs/s (load $(load))"

# 3. Trestle: the same jobs through pilots of a slurm compute environment.
dir=$(mktemp -d /tmp/trestle-bench-slurm.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/trestle.toml" <<EOF
listen = "127.0.0.1:$port"
data_dir = "$dir/data"
[local]
enabled = false
[compute_environments.bench]
provider = "slurm"
max_vcpus = $NODE_CPUS
idle_timeout = "10s"
prefetch = $PILOT_CPUS
shapes = [{ name = "pilot", vcpus = $PILOT_CPUS, memory = "2G" }]
slurm = { time_limit = "1h" }
EOF
(cd "$dir" && HOME=$dir XDG_CONFIG_HOME=$dir/config TRESTLE_LOG=warn \
  "$TRESTLE_BIN" up --config "$dir/trestle.toml" >"$dir/up.out" 2>"$dir/up.err") &
up_pid=$!
for _ in $(seq 100); do grep -q "running at" "$dir/up.out" 2>/dev/null && break; sleep 0.1; done
(cd "$dir" && HOME=$dir XDG_CONFIG_HOME=$dir/config "$TRESTLE_BIN" bench --jobs "$N" --latency-jobs 100) |
  sed "s/^/trestle via slurm pilots ($PILOT_CPUS CPUs each): /"
echo "trestle via slurm pilots: load after $(load)"
kill -INT "$up_pid" 2>/dev/null || true
wait "$up_pid" 2>/dev/null || true
while ! queue_empty; do sleep 0.5; done
rm -rf "$dir"
