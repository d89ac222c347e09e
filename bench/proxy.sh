#!/usr/bin/env bash
# The workspace proxy's overhead on loopback (issue 13's performance
# targets), in one run: the same app (crates/trestle-proxy/examples/
# proxy_bench.rs) reached directly on its Unix socket, through Trestle's
# proxy and tunnel (server process -> yamux tunnel -> worker process ->
# Unix socket), and through configurable-http-proxy (npm; the proxy
# JupyterHub uses) to the app's TCP port.
#
# Prints: added latency p50/p90/p99 over direct; a download of SIZE bytes
# (default 1 GiB) in MB/s and as a fraction of direct; the server's RSS
# growth holding WS (default 200) WebSockets, with CHP's for comparison.
# Targets: +1 ms p50 at most, >= 0.7 of direct, <= 50 MB.
#
# usage: bench/proxy.sh
# env:   N=2000          requests per latency run
#        SIZE=1073741824 bytes of the download
#        WS=200          concurrent WebSockets
#        CHP=1           also measure configurable-http-proxy (needs npm)
#        CHP_VERSION=4.6.3
#        PROFILE=release  debug for a quick check that the script works (no figures)
# Needs a quiet machine: the figures mean nothing while other builds run.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
SIZE=${SIZE:-1073741824}
WS=${WS:-200}
CHP=${CHP:-1}
CHP_VERSION=${CHP_VERSION:-4.6.3}
PROFILE=${PROFILE:-release}

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "commit: $(git rev-parse --short HEAD)"
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p trestle-proxy --example proxy_bench
else
  cargo build -q -p trestle-proxy --example proxy_bench
  PROFILE=debug
  echo "PROFILE=debug: a check of the script, not figures"
fi
BIN=$PWD/target/$PROFILE/examples/proxy_bench
PY="python3 $PWD/bench/proxy_client.py"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {  # wait_ready FILE: until the process printed "ready"
  for _ in $(seq 200); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "proxy.sh: $1 never became ready" >&2; cat "$1" >&2; exit 1
}
wait_http() {  # wait_http URL: until it answers 200
  for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.05
  done
  echo "proxy.sh: $1 never answered" >&2; exit 1
}

SERVER_PORT=$(free_port)
APP_PORT=$(free_port)
SOCK=$TMP/app.sock
"$BIN" server "$SERVER_PORT" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
wait_ready "$TMP/server.log"
"$BIN" worker "http://127.0.0.1:$SERVER_PORT" "$SOCK" "$APP_PORT" >"$TMP/worker.log" 2>&1 &
PIDS+=("$!")
wait_ready "$TMP/worker.log"
PROXY=127.0.0.1:$SERVER_PORT
wait_http "http://$PROXY/ws/1/small"

if [ "$CHP" = 1 ]; then
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/trestle-bench/chp-$CHP_VERSION
  if [ ! -x "$CACHE/node_modules/.bin/configurable-http-proxy" ]; then
    command -v npm >/dev/null || { echo "proxy.sh: CHP=1 needs npm (apt-get install nodejs npm)" >&2; exit 1; }
    mkdir -p "$CACHE"
    (cd "$CACHE" && npm install --no-audit --no-fund --silent "configurable-http-proxy@$CHP_VERSION")
  fi
  CHP_PORT=$(free_port)
  "$CACHE/node_modules/.bin/configurable-http-proxy" --ip 127.0.0.1 --port "$CHP_PORT" \
    --api-ip 127.0.0.1 --api-port "$(free_port)" --default-target "http://127.0.0.1:$APP_PORT" \
    --log-level error >"$TMP/chp.log" 2>&1 &
  CHP_PID=$!; PIDS+=("$CHP_PID")
  wait_http "http://127.0.0.1:$CHP_PORT/small"
fi

echo
echo "latency of GET /small over one keep-alive connection, $N requests (us: p50 p90 p99)"
read -r d50 d90 d99 <<<"$($PY latency "unix:$SOCK" /small "$N")"
echo "  direct (Unix socket)   $d50 $d90 $d99"
read -r p50 p90 p99 <<<"$($PY latency "$PROXY" /ws/1/small "$N")"
echo "  trestle proxy          $p50 $p90 $p99   added p50: $((p50 - d50)) us"
if [ "$CHP" = 1 ]; then
  read -r c50 c90 c99 <<<"$($PY latency "127.0.0.1:$CHP_PORT" /small "$N")"
  echo "  configurable-http-proxy $c50 $c90 $c99  added p50: $((c50 - d50)) us"
fi

echo
echo "download of $SIZE bytes (MB/s)"
speed() { curl -s -o /dev/null -w '%{speed_download}' "$@"; }
ds=$(speed --unix-socket "$SOCK" "http://localhost/big?n=$SIZE")
ps=$(speed "http://$PROXY/ws/1/big?n=$SIZE")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
mbs() { awk -v a="$1" 'BEGIN{printf "%.0f", a/1e6}'; }
echo "  direct (Unix socket)    $(mbs "$ds")"
echo "  trestle proxy           $(mbs "$ps")   of direct: $(ratio "$ps" "$ds")"
if [ "$CHP" = 1 ]; then
  cs=$(speed "http://127.0.0.1:$CHP_PORT/big?n=$SIZE")
  echo "  configurable-http-proxy $(mbs "$cs")   of direct: $(ratio "$cs" "$ds")"
fi

echo
echo "$WS concurrent WebSockets (RSS of the proxy, KiB: before after growth)"
read -r b a <<<"$($PY ws "$PROXY" /ws/1/ws "$WS" "$SERVER_PID")"
echo "  trestle server          $b $a $((a - b))"
if [ "$CHP" = 1 ]; then
  read -r b a <<<"$($PY ws "127.0.0.1:$CHP_PORT" /ws "$WS" "$CHP_PID")"
  echo "  configurable-http-proxy $b $a $((a - b))"
fi
