#!/usr/bin/env python3
"""Clients for bench/proxy.sh (standard library only).

  proxy_client.py latency TARGET PATH N
      N sequential GETs of PATH over one keep-alive connection; prints
      "p50_us p90_us p99_us". TARGET is host:port, or unix:/path/to/socket.
  proxy_client.py ws HOST:PORT PATH COUNT PID
      Opens COUNT WebSockets to PATH and keeps them open, sends one message
      on each and checks the echo; prints "rss_before_kib rss_after_kib"
      of process PID (the proxy being measured), then closes them.
"""

import base64
import http.client
import os
import socket
import struct
import sys
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.unix_path)
        self.sock = s


def connection(target):
    if target.startswith("unix:"):
        return UnixConnection(target[5:])
    host, port = target.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port))
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def latency(target, path, n):
    c = connection(target)
    samples = []
    for i in range(n + 50):
        t0 = time.perf_counter_ns()
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"{target}{path}: status {r.status}")
        if i >= 50:  # warm-up
            samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    print(f"{pick(0.5):.0f} {pick(0.9):.0f} {pick(0.99):.0f}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ws_open(addr, path):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("the WebSocket handshake was cut off")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit(f"no upgrade: {head[:200]!r}")
    return s


def ws_send(s, payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def ws_recv(s):
    head = b""
    while len(head) < 2:
        head += s.recv(2 - len(head))
    n = head[1] & 0x7F
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    return data


def ws(addr, path, count, pid):
    before = rss_kib(pid)
    socks = [ws_open(addr, path) for _ in range(count)]
    for i, s in enumerate(socks):
        msg = f"hello {i}".encode()
        ws_send(s, msg)
        if ws_recv(s) != msg:
            sys.exit("a WebSocket echo differed")
    time.sleep(1)
    after = rss_kib(pid)
    print(f"{before} {after}")
    for s in socks:
        s.close()


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "latency":
        latency(a[1], a[2], int(a[3]))
    elif len(a) == 5 and a[0] == "ws":
        ws(a[1], a[2], int(a[3]), int(a[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
