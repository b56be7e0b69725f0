#!/usr/bin/env python3
"""HealthKit upload throughput end to end: uploads of 1,000 samples each
over HTTP keep-alive to `clarity serve` on SQLite (client on the same
2-core machine). Target (issue #5): >= 200,000 samples/s stored. Prints the
figure beside the storage layer's raw insert floor when store_bench has
reported it (STORE_FLOOR env), since that bounds what HTTP can reach.

Then the database file's bytes per stored sample by what holds them (issue
#19; SQLite's dbstat: pages of each table and index, after a checkpoint).
BASELINE_BIN names another build of clarity (e.g. the release before
issue #19) to run the same uploads against in the same run."""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/clarity")
UPLOADS = int(os.environ.get("BENCH_UPLOADS", "200"))
PER = 1000
CLIENTS = 2


GROUPS = [("raw bodies", ("raw_uploads",)),
          ("sample rows + indexes", ("health_samples",)),
          ("sample_days", ("sample_days",))]


def disk(path, samples):
    """Bytes per sample by group, from SQLite's dbstat."""
    import sqlite3
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    tables = dict(db.execute("SELECT name, tbl_name FROM sqlite_master"))
    db.close()
    out, total = [], sum(sizes.values())
    for label, owners in GROUPS:
        b = sum(v for k, v in sizes.items() if tables.get(k, k) in owners)
        out.append("%s %.1f" % (label, b / samples))
    return "disk per sample: %.1f B all-in (%s)" % (total / samples, ", ".join(out))


def main():
    runs = [BIN] + ([os.path.abspath(os.environ["BASELINE_BIN"])] if os.environ.get("BASELINE_BIN") else [])
    for b in runs:
        if len(runs) > 1:
            print("-- %s" % b)
        run(b)


def run(BIN):
    d = tempfile.mkdtemp(prefix="clarity-upload-bench-")
    env = dict(os.environ, PORT="0", HOST="127.0.0.1", DATABASE_URL="sqlite:%s/bench.db" % d,
               LOG_LEVEL="WARNING", PASSWORD_HASH_PROFILE="interactive", WORKER_THREADS="0",
               RATE_LIMITS="auth=1000/60,upload=1000000/60,api=1000000/60", MAX_REQUEST_BYTES="67108864")
    p = subprocess.Popen([BIN, "serve"], cwd=d, env=dict(env, LOG_LEVEL="INFO"), stderr=subprocess.PIPE)
    port = None
    for line in p.stderr:
        rec = json.loads(line)
        if rec.get("message") == "listening":
            port = rec["port"]
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()

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

    t0 = time.time()
    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.time() - t0
    p.terminate()
    p.wait()
    if errors:
        raise SystemExit("upload_bench: %s" % errors[0])
    total = sum(stored)
    print("HealthKit uploads: %d x %d samples (%.1f MB JSON) in %.2f s, %d clients, keep-alive" %
          (UPLOADS, PER, mb, secs, CLIENTS))
    print("stored end to end: %.0f samples/s   target >= 200000" % (total / secs))
    floor = os.environ.get("STORE_FLOOR")
    if floor:
        print("storage raw insert floor (store_bench): %s rows/s" % floor)
    print(disk("%s/bench.db" % d, total))
    subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
