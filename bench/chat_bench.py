#!/usr/bin/env python3
"""Chat over WebSocket (issue 10): N concurrent idle connections to one
`clarity serve` (server RSS before and after, server CPU while idle), then
M connections each sending a heartbeat per second (round-trip p50/p99).
Targets: 10,000 idle connections within 200 MB RSS; 1,000 x 1/s heartbeats
with p99 <= 10 ms. The client runs in this one Python process on the same
machine, so the round trips include its own scheduling.

Usage: bench/chat_bench.py [BUILD_DIR/clarity]; BENCH_CHAT_IDLE (default
10000), BENCH_CHAT_ACTIVE (1000), BENCH_CHAT_SECONDS (10). The client holds
one descriptor per connection too: it raises its own soft RLIMIT_NOFILE to
the hard limit (the server does the same at start-up) and says so when even
that is too low."""
import base64
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/clarity")
os.environ["CLARITY_BIN"] = BIN
from harness import Server  # noqa: E402
from test_pipeline import Client  # noqa: E402

IDLE = int(os.environ.get("BENCH_CHAT_IDLE", "10000"))
ACTIVE = int(os.environ.get("BENCH_CHAT_ACTIVE", "1000"))
SECONDS = int(os.environ.get("BENCH_CHAT_SECONDS", "10"))
PER_USER = 1000


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame(payload):
    payload = payload.encode()
    key = os.urandom(4)
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def open_ws(port, user):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /api/v1/chat/%s?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (user.user_id, user.token, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf or b"connection_ack" not in buf:
        data = s.recv(4096)
        if not data:
            raise RuntimeError("closed during handshake: %r" % buf[:200])
        buf += data
    if not buf.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(buf[:200])
    return s


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < need:
        sys.exit("chat_bench: RLIMIT_NOFILE hard limit %d < %d descriptors needed (ulimit -Hn)" % (soft, need))


def main():
    total = max(IDLE, ACTIVE)
    raise_nofile(IDLE + 256)
    users_needed = (total + PER_USER - 1) // PER_USER
    srv = Server(env={"WORKER_THREADS": "0",
                      "RATE_LIMITS": "auth=1000/60,api=100000/60,chat=1000000/60",
                      "CHAT_MAX_CONNECTIONS_PER_USER": str(PER_USER), "CHAT_MESSAGES_PER_MINUTE": "100000",
                      "CHAT_MAX_CONNECTIONS": str(max(IDLE, 16384))}, timeout=30)
    try:
        pid = srv.proc.pid
        users = [Client(srv) for _ in range(users_needed)]
        base_rss = rss_kb(pid)
        socks = []
        t0 = time.time()
        for i in range(IDLE):
            socks.append(open_ws(srv.port, users[i // PER_USER]))
        opened = time.time() - t0
        time.sleep(1.0)
        rss = rss_kb(pid)
        c0 = cpu_s(pid)
        time.sleep(SECONDS)
        idle_cpu = cpu_s(pid) - c0
        print("idle: %d connections opened in %.1f s; server RSS %.1f MB -> %.1f MB (+%.1f KB/connection); "
              "server CPU while idle %.2f%% of one core"
              % (IDLE, opened, base_rss / 1024, rss / 1024, (rss - base_rss) / max(IDLE, 1),
                 100 * idle_cpu / SECONDS))

        # Active: the first ACTIVE sockets send one heartbeat per second each.
        act = socks[:ACTIVE]
        sel = selectors.DefaultSelector()
        for k, s in enumerate(act):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, k)
        pending = {}
        bufs = [b""] * len(act)
        rtts = []
        start = time.time()
        nxt = [start + (k / len(act)) for k in range(len(act))]
        c0 = cpu_s(pid)
        while time.time() - start < SECONDS:
            now = time.time()
            for k, s in enumerate(act):
                if nxt[k] <= now and k not in pending:
                    pending[k] = time.perf_counter()
                    s.sendall(frame('{"type":"heartbeat"}'))
                    nxt[k] += 1.0
            for key, _ in sel.select(timeout=0.001):
                k = key.data
                data = key.fileobj.recv(65536)
                bufs[k] += data
                while len(bufs[k]) >= 2:
                    n = bufs[k][1] & 0x7F
                    hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
                    if n >= 126:
                        if len(bufs[k]) < hl:
                            break
                        n = struct.unpack("!H", bufs[k][2:4])[0] if hl == 4 else struct.unpack("!Q", bufs[k][2:10])[0]
                    if len(bufs[k]) < hl + n:
                        break
                    payload, bufs[k] = bufs[k][hl:hl + n], bufs[k][hl + n:]
                    if b"heartbeat_ack" in payload and k in pending:
                        rtts.append(time.perf_counter() - pending.pop(k))
        active_cpu = cpu_s(pid) - c0
        rtts.sort()
        if rtts:
            p50 = rtts[len(rtts) // 2] * 1000
            p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1000
            print("active: %d connections x 1 heartbeat/s for %d s: %d round trips, p50 %.2f ms, p99 %.2f ms; "
                  "server CPU %.1f%% of one core" % (len(act), SECONDS, len(rtts), p50, p99,
                                                    100 * active_cpu / SECONDS))
        print("targets: >= 10,000 idle within 200 MB RSS: %s; 1,000 x 1/s heartbeat p99 <= 10 ms: %s (load average %s)"
              % ("met" if IDLE >= 10000 and rss <= 200 * 1024 else "NOT met",
                 ("met" if p99 <= 10 else "NOT met") if rtts else "not measured",
                 " ".join("%.2f" % x for x in os.getloadavg())))
        print(json.dumps({"idle_connections": IDLE, "rss_mb": round(rss / 1024, 1),
                          "rss_base_mb": round(base_rss / 1024, 1), "idle_cpu_pct": round(100 * idle_cpu / SECONDS, 2),
                          "active_connections": len(act), "rtt_p50_ms": round(p50, 2) if rtts else None,
                          "rtt_p99_ms": round(p99, 2) if rtts else None}))
        for s in socks:
            s.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
