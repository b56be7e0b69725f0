#!/usr/bin/env python3
"""Research-recording upload end to end (issue #20): POST /api/v1/recordings
to `clarity serve` on SQLite, client on the same machine. For a week of
Actiwatch .AWD at 60 s, a month at 30 s and a year of `timestamp,value` CSV
at 60 s: the seconds from the first byte sent to the 202 (read, every epoch
stored and the analysis queued, one transaction), epochs stored per second,
the seconds until the worker's analysis is completed, and, beside them, the
seconds `clarity analyze` takes on the same file (the baseline: reading and
analysing without storing). Then the same file again (every epoch a
duplicate)."""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/clarity")


def awd(path, days, epoch_code, per_min):
    lines = ["BENCH", "11-Mar-2024", "12:00", str(epoch_code), "40", "SN1", "F"]
    x = 7
    for m in range(days * 1440 * per_min):
        x = (x * 1103515245 + 12345) % 2**31
        clock = (720 + m // per_min) % 1440
        lines.append(str(int(150 + 250 * ((x >> 8) % 1000) / 1000) if 420 <= clock < 1380 else (x >> 8) % 7))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def csv_year(path):
    with open(path, "w") as f:
        f.write("timestamp,value\n")
        t0 = 1704067200  # 2024-01-01T00:00
        for m in range(365 * 1440):
            clock = m % 1440
            t = time.gmtime(t0 + m * 60)
            f.write("%04d-%02d-%02dT%02d:%02d:00,%d\n" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
                                                          200 + m % 97 if 420 <= clock < 1380 else m % 5))


def req(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def main():
    d = tempfile.mkdtemp(prefix="clarity-recording-bench-")
    env = dict(os.environ, PORT="0", HOST="127.0.0.1", DATABASE_URL="sqlite:%s/bench.db" % d, LOG_LEVEL="INFO",
               PASSWORD_HASH_PROFILE="interactive", RATE_LIMITS="auth=1000/60,upload=1000/60,api=100000/60")
    p = subprocess.Popen([BIN, "serve"], cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        rec = json.loads(line) if line.startswith("{") else {}
        if rec.get("message") == "listening":
            port = rec["port"]
            break
    try:
        files = [("week, AWD 60 s", "week.AWD", lambda f: awd(f, 7, 4, 1)),
                 ("month, AWD 30 s", "month.AWD", lambda f: awd(f, 30, 2, 2)),
                 ("year, CSV 60 s", "year.csv", csv_year)]
        for label, name, make in files:
            path = os.path.join(d, name)
            make(path)
            with open(path, "rb") as f:
                body = f.read()
            email = "bench-%s@example.com" % uuid.uuid4().hex[:8]
            req(port, "POST", "/api/v1/auth/register", json.dumps({
                "email": email, "password": "Correct-Horse-9!", "first_name": "B", "last_name": "B",
                "terms_accepted": True, "privacy_policy_accepted": True}), {"Content-Type": "application/json"})
            _, doc = req(port, "POST", "/api/v1/auth/login", json.dumps({"email": email, "password": "Correct-Horse-9!"}),
                         {"Content-Type": "application/json"})
            auth = {"Authorization": "Bearer " + doc["tokens"]["access_token"],
                    "Content-Type": "application/octet-stream"}
            t0 = time.perf_counter()
            st, doc = req(port, "POST", "/api/v1/recordings?name=" + name, body, auth)
            up = time.perf_counter() - t0
            assert st == 202, doc
            n = doc["recording"]["epochs"]
            uid = doc["upload_id"]
            while True:
                _, s = req(port, "GET", "/api/v1/healthkit/status/" + uid, None, auth)
                if s["status"] in ("completed", "failed"):
                    break
                time.sleep(0.05)
            analysed = time.perf_counter() - t0
            t1 = time.perf_counter()
            st, again = req(port, "POST", "/api/v1/recordings?name=" + name, body, auth)
            dup = time.perf_counter() - t1
            t2 = time.perf_counter()
            subprocess.run([BIN, "analyze", path, "--window", "7d"], capture_output=True, check=True)
            cli = time.perf_counter() - t2
            print("%-16s %8.1f KB %7d epochs: upload %.3f s (%.0f epochs/s), analysis %s after %.3f s; "
                  "again %.3f s (%d duplicates); clarity analyze --window 7d %.3f s"
                  % (label, len(body) / 1024, n, up, n / up, s["status"], analysed, dup,
                     again["recording"]["duplicates"], cli))
    finally:
        p.terminate()
        p.wait(30)


if __name__ == "__main__":
    main()
