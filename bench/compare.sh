#!/usr/bin/env bash
# Compares the throughput of two builds of the `trestle` binary, for claims
# like "no more than X% slower": at least five runs per build, alternating
# A, B, A, B, ... in one session on this machine, each run a fresh
# `trestle up` (new data directory, new port) measured by `trestle bench`.
# Prints every run in the order it ran, then per build the median, min and
# max, then B's median against A's.
#
# usage: bench/compare.sh A_BIN B_BIN [N]   two release binaries, N jobs per run (default 20000)
# env:   RUNS=5              runs per build (at least 5)
#        LABEL_A, LABEL_B    names printed for the builds (default: the paths)
#        BACKLOG=1000        jobs queued before each measurement (run.sh's "1k queued" figure)
#        RUN_TIMEOUT=900     seconds one `trestle bench` may take before the run fails
#        KEEP=1              keep the temp dir (server logs, bench output) after a good session
#
# The server of each run is started as in bench/run.sh (a generated
# trestle.toml in a temp dir, HOME and XDG_CONFIG_HOME pointed there so the
# CLI finds the token `up` writes), but in its own process group, which is
# killed on exit, so nothing is left running. A failed run stops the
# session with a non-zero exit and prints where its server log is.
set -euo pipefail

usage() { sed -n '9,14s/^# \{0,1\}//p' "$0" >&2; exit 2; }
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
N=${3:-20000}
RUNS=${RUNS:-5}
BACKLOG=${BACKLOG:-1000}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
KEEP=${KEEP:-0}
for v in N RUNS BACKLOG RUN_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "compare.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
[ "$RUNS" -ge 5 ] || { echo "compare.sh: RUNS=$RUNS: at least 5 runs per build are needed" >&2; exit 2; }
[ "$N" -gt 0 ] || { echo "compare.sh: N must be at least 1" >&2; exit 2; }

abs_bin() {  # abs_bin PATH: absolute path of an executable file, or fail
  if [ ! -f "$1" ] || [ ! -x "$1" ]; then
    echo "compare.sh: $1 is not an executable file" >&2
    exit 2
  fi
  echo "$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"
}
BIN_A=$(abs_bin "$1")
BIN_B=$(abs_bin "$2")
LABEL_A=${LABEL_A:-$1}
LABEL_B=${LABEL_B:-$2}
command -v python3 >/dev/null || { echo "compare.sh: python3 is needed to pick a free port" >&2; exit 2; }

WORK=$(mktemp -d /tmp/trestle-compare.XXXXXX)
exec 3>&2    # the caller's stderr, for the exit trap (a run's stderr goes to its log)
UP_PID=      # the `trestle up` of the current run; also its process group id
BENCH_PID=   # the `trestle bench` of the current run (under timeout)
TPUT=
FAILED=0

# stop_up PID: stops a server started by run_once and everything in its
# process group (the local workers): SIGTERM, up to 15 s for a clean stop,
# then SIGKILL.
stop_up() {
  local pid=$1 state
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || state=
    [ -z "$state" ] || [ "$state" = Z ] && break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # The workers are in the group too; give them a moment, then kill the rest.
  for _ in $(seq 50); do
    pgrep -g "$pid" >/dev/null 2>&1 || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$BENCH_PID" ]; then kill -TERM "$BENCH_PID" 2>/dev/null || true; wait "$BENCH_PID" 2>/dev/null || true; fi
  if [ -n "$UP_PID" ]; then stop_up "$UP_PID"; UP_PID=; fi
  if [ "$rc" -eq 0 ] && [ "$FAILED" -eq 0 ] && [ "$KEEP" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "temp dir kept: $WORK" >&3
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The CLI must find the server of the run, not one named in the caller's
# environment.
RUN_ENV=(-u TRESTLE_URL -u TRESTLE_TOKEN -u TRESTLE_CLIENT_CONFIG)

# run_once BIN DIR: one fresh server, one `trestle bench`; sets TPUT to the
# throughput (jobs/s), or returns 1 with the reason on stderr.
run_once() {
  local bin=$1 dir=$2 port out failed rc=0
  TPUT=
  mkdir -p "$dir/config" || return 1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])') || return 1
  printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/data"\n' "$port" "$dir" >"$dir/trestle.toml" || return 1
  # setsid: the server and its workers get a process group of their own
  # (the subshell is not a group leader, so setsid execs in place and
  # $! is the server's pid and group id).
  (cd "$dir" && exec env "${RUN_ENV[@]}" HOME="$dir" XDG_CONFIG_HOME="$dir/config" TRESTLE_LOG=warn \
     setsid "$bin" up --config "$dir/trestle.toml" >"$dir/up.out" 2>"$dir/up.err" </dev/null 3>&-) &
  UP_PID=$!
  local ready=0
  for _ in $(seq 300); do
    if grep -q "running at" "$dir/up.out" 2>/dev/null; then ready=1; break; fi
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$ready" != 1 ]; then
    if kill -0 "$UP_PID" 2>/dev/null; then
      echo "the server was not ready within 30 s" >&2
    else
      echo "the server exited before it was ready" >&2
    fi
    return 1
  fi
  # In the background and waited for, so that Ctrl-C reaches the trap at once.
  (cd "$dir" && exec env "${RUN_ENV[@]}" HOME="$dir" XDG_CONFIG_HOME="$dir/config" \
     timeout "$RUN_TIMEOUT" "$bin" bench --jobs "$N" --backlog "$BACKLOG" --latency-jobs 0 \
     >"$dir/bench.out" 2>"$dir/bench.err" </dev/null 3>&-) &
  BENCH_PID=$!
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=
  stop_up "$UP_PID"
  UP_PID=
  # throughput: 2158.7 jobs/s (20000 jobs, first submit to last finish 9.26s; ...; failed 0)
  out=$(grep -m 1 '^throughput: ' "$dir/bench.out") || out=
  failed=$(sed -n 's/.*failed \([0-9]*\))$/\1/p' <<<"$out")
  if [ -n "$failed" ] && [ "$failed" != 0 ]; then
    echo "$failed of $N jobs did not succeed" >&2
    return 1
  fi
  if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 124 ]; then
      echo "trestle bench timed out after ${RUN_TIMEOUT}s" >&2
    else
      echo "trestle bench exited with status $rc" >&2
    fi
    return 1
  fi
  TPUT=$(sed -n 's/^throughput: \([0-9][0-9.]*\) jobs\/s.*/\1/p' <<<"$out")
  if [ -z "$TPUT" ]; then
    echo "no throughput line in the bench output" >&2
    return 1
  fi
  rm -rf "$dir/data"   # the logs stay; the database does not need to
}

# stats VALUE...: "median min max"
stats() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1}
    END{m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
        printf "%.1f %.1f %.1f\n", m, v[1], v[NR]}'
}

load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "command: RUNS=$RUNS BACKLOG=$BACKLOG $(printf '%q ' "$0" "$1" "$2" "$N" | sed 's/ $//')"
describe() {  # describe BIN: version and a short hash, to tell the builds apart
  echo "$("$1" --version 2>/dev/null || echo "version unknown"), sha256 $(sha256sum "$1" | cut -c1-12)"
}
echo "A: $LABEL_A ($BIN_A, $(describe "$BIN_A"))"
echo "B: $LABEL_B ($BIN_B, $(describe "$BIN_B"))"
echo "per run: trestle up (SQLite, local workers, fresh data dir and port), then trestle bench --jobs $N --backlog $BACKLOG --latency-jobs 0"
echo "load average before: $(load)"

VALS_A=() VALS_B=()
for i in $(seq "$RUNS"); do
  for side in A B; do
    if [ "$side" = A ]; then bin=$BIN_A; else bin=$BIN_B; fi
    dir=$WORK/run-$i-$side
    mkdir -p "$dir"
    if run_once "$bin" "$dir" 2>"$dir/compare.err"; then
      echo "$side run $i: $TPUT jobs/s"
      if [ "$side" = A ]; then VALS_A+=("$TPUT"); else VALS_B+=("$TPUT"); fi
    else
      FAILED=1
      echo "$side run $i: FAILED: $(tail -n 1 "$dir/compare.err")"
      echo "  server log: $dir/up.out, $dir/up.err"
      echo "  bench output: $dir/bench.out, $dir/bench.err"
      exit 1
    fi
  done
done
echo "load average after: $(load)"

read -r med_a min_a max_a < <(stats "${VALS_A[@]}")
read -r med_b min_b max_b < <(stats "${VALS_B[@]}")
echo "A ($LABEL_A): median $med_a jobs/s, min $min_a, max $max_a ($RUNS runs)"
echo "B ($LABEL_B): median $med_b jobs/s, min $min_b, max $max_b ($RUNS runs)"
echo "B vs A: $(awk -v a="$med_a" -v b="$med_b" 'BEGIN{printf "%+.1f%%", (b - a) / a * 100}') (median)"
echo "(jobs/s, higher is better: a negative figure means B is slower)"
