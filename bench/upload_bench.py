#!/usr/bin/env python3
"""HealthKit upload throughput end to end: uploads of 1,000 samples each
over HTTP keep-alive to `clarity serve` on SQLite (client on the same
2-core machine). Target (issue #5): >= 200,000 samples/s stored. Prints the
figure beside the storage layer's raw insert floor when store_bench has
reported it (STORE_FLOOR env), since that bounds what HTTP can reach.

The server runs as a staging deployment does (bench/benchlib.py: real
keys, migrations applied first, SQLite synchronous=FULL, the production
write path); UPLOAD_BENCH_SYNC=normal runs it as development instead
(synchronous=NORMAL, the figure measured before issue #19).

Then the database file's bytes per stored sample by what holds them (issue
#19; SQLite's dbstat: pages of each table and index, after a checkpoint).
BASELINE_BIN names another build of clarity (e.g. the release before
issue #19) to run the same uploads against in the same run.
bench/storage_bench.py runs this for both binaries beside its own figures."""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/clarity")
UPLOADS = int(os.environ.get("BENCH_UPLOADS", "200"))
PER = 1000
CLIENTS = 2


GROUPS = [("raw bodies", ("raw_uploads",)),
          ("sample rows + indexes", ("health_samples",)),
          ("sample_days", ("sample_days",))]


def disk(path, samples):
    """Bytes per sample all-in and by group, from SQLite's dbstat: (line, bytes)."""
    objs, _, _ = benchlib.sqlite_objects(path)
    out, total = [], sum(b for _, b in objs.values())
    for label, owners in GROUPS:
        b = sum(v for t, v in objs.values() if t in owners)
        out.append("%s %.1f" % (label, b / samples))
    return "disk per sample: %.1f B all-in (%s)" % (total / samples, ", ".join(out)), total


def main():
    runs = [BIN] + ([os.path.abspath(os.environ["BASELINE_BIN"])] if os.environ.get("BASELINE_BIN") else [])
    for b in runs:
        if len(runs) > 1:
            print("-- %s" % b)
        run(b)


def run(BIN, UPLOADS=UPLOADS):
    """Run the uploads against BIN; print and return the figures."""
    d = tempfile.mkdtemp(prefix="clarity-upload-bench-")
    full = os.environ.get("UPLOAD_BENCH_SYNC", "full") != "normal"
    env = benchlib.staging_env("sqlite:%s/bench.db" % d, d, full_sync=full)
    if full:
        benchlib.cli(BIN, ["migrate", "up"], env, d)
    srv = benchlib.Server(BIN, env, d)
    port = srv.port

    def call(conn, method, path, body, token=None):
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        conn.request(method, path, body=json.dumps(body), headers=h)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")

    c = http.client.HTTPConnection("127.0.0.1", port)
    email = "bench@example.com"
    call(c, "POST", "/api/v1/auth/register", {"email": email, "password": "Bench-Pass-1", "first_name": "B",
                                              "last_name": "B", "terms_accepted": True,
                                              "privacy_policy_accepted": True})
    _, login = call(c, "POST", "/api/v1/auth/login", {"email": email, "password": "Bench-Pass-1"})
    token, user = login["tokens"]["access_token"], login["user"]["user_id"]

    # Bodies are built before the clock starts: the client must not be the bottleneck.
    bodies = []
    for u in range(UPLOADS):
        samples = [{"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierHeartRate",
                    "value": 50 + (k % 60), "unit": "count/min",
                    "start_date": "2026-11-%02dT%02d:%02d:00Z" % (1 + u % 28, (k // 60) % 24, k % 60),
                    "end_date": "2026-11-%02dT%02d:%02d:00Z" % (1 + u % 28, (k // 60) % 24, k % 60)}
                   for k in range(PER)]
        bodies.append(json.dumps({"user_id": user, "quantity_samples": samples}).encode())
    mb = sum(len(b) for b in bodies) / 1e6
    stored = [0] * CLIENTS
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token}

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(k, UPLOADS, CLIENTS):
            conn.request("POST", "/api/v1/healthkit/upload", body=bodies[i], headers=headers)
            r = conn.getresponse()
            doc = json.loads(r.read())
            if r.status != 202:
                raise SystemExit("upload failed: %s" % doc)
            stored[k] += doc["samples_stored"]

    errors = []

    def guarded(k):
        try:
            client(k)
        except BaseException as e:  # a failed upload fails the benchmark
            errors.append(e)

    cpu0 = benchlib.cpu_seconds(srv.proc.pid)
    t0 = time.time()
    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.time() - t0
    cpu = benchlib.cpu_seconds(srv.proc.pid) - cpu0
    srv.stop()
    if errors:
        raise SystemExit("upload_bench: %s" % errors[0])
    total = sum(stored)
    print("HealthKit uploads: %d x %d samples (%.1f MB JSON) in %.2f s, %d clients, keep-alive, "
          "SQLite synchronous=%s" % (UPLOADS, PER, mb, secs, CLIENTS, "FULL" if full else "NORMAL"))
    print("stored end to end: %.0f samples/s   target >= 200000" % (total / secs))
    # Wall time on a shared 2-core machine swings 2x between runs; the
    # server's own CPU (all threads, user + system; its in-process workers
    # included) per stored sample is the steadier figure to compare.
    print("server CPU: %.2f us per stored sample (%.2f s)" % (cpu * 1e6 / max(total, 1), cpu))
    floor = os.environ.get("STORE_FLOOR")
    if floor:
        print("storage raw insert floor (store_bench): %s rows/s" % floor)
    line, size = disk("%s/bench.db" % d, total)
    print(line)
    subprocess.run(["rm", "-rf", d])
    return {"samples_per_s": total / secs, "cpu_us_per_sample": cpu * 1e6 / max(total, 1), "bytes_per_sample": size / total, "samples": total}


if __name__ == "__main__":
    main()
