#!/usr/bin/env python3
"""Issue #19's storage figures, same run against a baseline binary, on SQLite
and PostgreSQL, only through clarity's public interfaces (so they keep
measuring whatever the sample store looks like inside):

  1. disk per stored sample, all-in, on one person's realistic mix: a
     generated Apple Health export (bench/health_gen.py: a year by default)
     imported with `clarity import apple-health`, then the iOS app's daily
     syncs (POST /api/v1/healthkit, the last 7 days re-sent each time, no
     UUIDs) for the following weeks. Measured after the import ("export"),
     after the syncs ("all-in, raw kept") and after the product's own purge
     of raw upload bodies ("raw purged": RAW_UPLOAD_RETENTION_DAYS=1 and
     `clarity worker` run with the clock two days ahead under libfaketime;
     its start-up sweep deletes the bodies). SQLite: dbstat bytes of every
     table and index (pages in use; the file size and free pages beside);
     PostgreSQL: per table heap, TOAST and indexes after VACUUM (ANALYZE).
     Divided by the samples the product reports stored (import "stored" +
     the syncs' "processed_samples").
  2. Apple Health import: MB of export.xml per second (the command's own
     figure, and the whole process's wall time) and the importing process's
     peak RSS (ru_maxrss from wait4 on the `clarity import` child).
  3. HealthKit upload ingest over HTTP, samples/s end to end (SQLite,
     synchronous=FULL): bench/upload_bench.py's figure, run for both binaries.

Each binary gets a fresh database and a staging configuration (real keys,
synchronous=FULL). Targets (issue #19): <= 48 B/sample all-in (<= 24 B with
raw bodies purged), import >= 50 MB/s with RSS <= 64 MB, >= 200,000
samples/s. Missed targets are reported, not fatal.

    python3 bench/storage_bench.py --bin build/release/clarity \\
        --baseline build/baseline/clarity [--days 365] [--sync-days 28]
        [--backends sqlite,postgres] [--seed 19] [--uploads 200]

Default size: --days 120 (about 37 MB of export.xml), a few minutes for
both binaries on both backends. Full size: --days 730 --sync-days 56
--uploads 1000. --repeat N runs each binary N times, alternating, and keeps
the best throughput (the machine is shared: compare ratios, not absolutes). A PostgreSQL server is started with scripts/pg-test-server
unless CLARITY_TEST_PG_URL names one (a database per run is created in it).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import health_gen  # noqa: E402

EMAIL = "jane@example.com"
PASSWORD = "Bench-Pass-1"
TARGET_ALL_IN, TARGET_NO_RAW, TARGET_MBS, TARGET_RSS, TARGET_SPS = 48, 24, 50, 64, 200000


def mb(x):
    return x / 1e6


class Postgres:
    """The PostgreSQL server of the run (CLARITY_TEST_PG_URL: main() runs
    itself under scripts/pg-test-server when none is given); a fresh
    database per run is created in it."""

    def __init__(self):
        self.url = os.environ["CLARITY_TEST_PG_URL"]
        self.n = 0

    def database(self, label):
        self.n += 1
        name = "storage_bench_%s_%d" % (re.sub(r"[^a-z0-9]", "_", label.lower()), self.n)
        benchlib.psql(self.url, "DROP DATABASE IF EXISTS %s" % name)
        benchlib.psql(self.url, "CREATE DATABASE %s" % name)
        return self.url.rsplit("/", 1)[0] + "/" + name


def disk(backend, url, db_path):
    """{"objects": [(table, object, heap, toast, index)], "total": bytes, "extra": {...}}"""
    if backend == "sqlite":
        objs, size, free = benchlib.sqlite_objects(db_path)
        rows = []
        for name, (table, b) in objs.items():
            rows.append((table, name, b if name == table else 0, 0, 0 if name == table else b))
        return {"objects": rows, "total": sum(b for _, b in objs.values()),
                "extra": {"file": size, "free": free}}
    objs, idxs = benchlib.pg_objects(url)
    rows = [(t, t, heap, toast, 0) for t, (heap, toast, idx, total) in objs.items()]
    rows += [(t, i, 0, 0, b) for t, i, b in idxs]
    return {"objects": rows, "total": sum(v[3] for v in objs.values()), "extra": {}}


def run_import(binary, env, cwd, xml):
    """`clarity import apple-health`: (report, process wall s, peak RSS MB,
    CPU s of the process: user + system, from wait4)."""
    t0 = time.time()
    p = subprocess.Popen([binary, "import", "apple-health", xml, "--user", EMAIL], env=env, cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = []
    t = threading.Thread(target=lambda: err.append(p.stderr.read()))
    t.start()
    out = p.stdout.read()
    t.join()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.time() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit("clarity import failed (%d): %s" % (p.returncode, err[0].decode()[-2000:]))
    return json.loads(out), wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime


def app_syncs(binary, env, cwd, first_day, sync_days, window, seed):
    """The iOS app's daily syncs after the export: (stored, skipped, samples sent, seconds, bytes)."""
    person = health_gen.Person(seed)
    srv = benchlib.Server(binary, env, cwd)
    try:
        c = srv.conn()
        token, user = benchlib.login(c, EMAIL, PASSWORD)
        bodies = []
        for k in range(sync_days):
            day = first_day + k
            sync_ms = int((health_gen.EPOCH.timestamp() + (day + 1) * 86400 + 7200) * 1000)
            doc = health_gen.app_sync_body(person, user, max(0, day - window + 1), day, sync_ms)
            bodies.append((len(doc["samples"]), json.dumps(doc).encode()))
        stored = skipped = 0
        t0 = time.time()
        for n, body in bodies:
            status, doc = benchlib.call(c, "POST", "/api/v1/healthkit", body, token)
            if status != 202:
                raise SystemExit("app sync failed: %s %s" % (status, doc))
            stored += doc["processed_samples"]
            skipped += doc["skipped_samples"]
        secs = time.time() - t0
    finally:
        srv.stop()
    return stored, skipped, sum(n for n, _ in bodies), secs, sum(len(b) for _, b in bodies)


def faketime_lib():
    """libfaketime (Debian package faketime), or None."""
    for d in ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime", "/usr/lib/faketime"):
        if os.path.exists(os.path.join(d, "libfaketime.so.1")):
            return os.path.join(d, "libfaketime.so.1")
    return None


def purge_raw(binary, env, cwd, timeout=120):
    """The product's purge of raw bodies past RAW_UPLOAD_RETENTION_DAYS: a
    `clarity worker` (insights topic only, so no analysis runs) with the
    clock two days ahead; its start-up sweep purges. Returns bodies purged,
    or None when it cannot be triggered (no faketime)."""
    lib = faketime_lib()
    if lib is None:
        return None
    # libfaketime preloaded into the worker itself (the faketime wrapper
    # would stand between it and our SIGTERM); the monotonic clock is real.
    e = dict(env, RAW_UPLOAD_RETENTION_DAYS="1", LOG_LEVEL="INFO", LD_PRELOAD=lib, FAKETIME="+2d",
             FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1")
    # A sanitizer build refuses a preloaded library ahead of its runtime.
    e["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if x)
    p = subprocess.Popen([binary, "worker", "--topics", "insights-generation", "--threads", "1"], env=e, cwd=cwd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    purged = None
    box = []

    def read():
        for line in p.stderr:
            try:
                rec = json.loads(line)
            except ValueError:
                rec = {"message": "", "raw": line.decode("utf-8", "replace")}
            box.append(rec)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    deadline = time.time() + timeout
    # The sweep logs the purge (bodies > 0); the backfill logs after it.
    while time.time() < deadline and p.poll() is None:
        for rec in list(box):
            if "purged raw upload bodies" in rec.get("message", ""):
                purged = rec.get("bodies")
        if purged is not None:
            break
        time.sleep(0.2)
    if p.poll() is not None:
        raise SystemExit("clarity worker exited %s before purging: %s" % (
            p.returncode, " ".join(r.get("raw", r.get("message", "")) for r in box)[-2000:]))
    time.sleep(1.0)  # let the rest of the sweep finish its transaction
    p.terminate()
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return purged if purged is not None else 0


def run_one(label, binary, backend, xml, pg, a):
    d = tempfile.mkdtemp(prefix="clarity-storage-bench-")
    db_path = os.path.join(d, "clarity.db")
    url = "sqlite:" + db_path if backend == "sqlite" else pg.database(label)
    try:
        env = benchlib.staging_env(url, d)
        benchlib.cli(binary, ["migrate", "up"], env, d)
        benchlib.cli(binary, ["users", "create", EMAIL, "--first-name", "Jane", "--last-name", "Doe",
                              "--password-stdin"], env, d, stdin=(PASSWORD + "\n").encode())
        rep, wall, rss, cpu = run_import(binary, env, d, xml)
        r = {"import": {"bytes": rep["bytes"], "stored": rep["stored"], "records": rep["records"],
                        "unknown": rep["unknown"], "seconds": rep["seconds"], "mb_per_s": rep["mb_per_s"],
                        "wall": wall, "wall_mb_per_s": mb(rep["bytes"]) / wall, "rss_mb": rss,
                        "cpu_mb_per_s": mb(rep["bytes"]) / cpu if cpu > 0 else 0.0}}
        r["export"] = dict(disk(backend, url, db_path), samples=rep["stored"])
        stored, skipped, sent, secs, body_bytes = app_syncs(binary, env, d, a.days, a.sync_days, 7, a.seed)
        total = rep["stored"] + stored
        r["app"] = {"stored": stored, "skipped": skipped, "sent": sent, "seconds": secs, "bytes": body_bytes}
        r["all-in"] = dict(disk(backend, url, db_path), samples=total)
        purged = purge_raw(binary, env, d)
        r["purged_bodies"] = purged
        if purged is not None:
            r["raw purged"] = dict(disk(backend, url, db_path), samples=total)
        return r
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)
        if backend == "postgres" and not a.keep:
            name = url.rsplit("/", 1)[1]
            benchlib.psql(pg.url, "DROP DATABASE IF EXISTS %s" % name)


def best_of(runs):
    """One run's figures from --repeat runs of a binary: disk from the first
    (it repeats to the byte), throughput the best run's (the least disturbed
    by the shared machine), peak RSS the largest."""
    r = runs[0]
    for x in runs[1:]:
        for k in ("mb_per_s", "wall_mb_per_s", "cpu_mb_per_s"):
            r["import"][k] = max(r["import"][k], x["import"][k])
        r["import"]["rss_mb"] = max(r["import"]["rss_mb"], x["import"]["rss_mb"])
        if x["app"]["sent"] / x["app"]["seconds"] > r["app"]["sent"] / r["app"]["seconds"]:
            r["app"]["seconds"] = x["app"]["seconds"]
    r["runs"] = len(runs)
    return r


def breakdown(label, phase, p):
    """The phase's bytes per sample by table (and its indexes, TOAST)."""
    n = p["samples"]
    print("  %s, %s: %.1f B/sample all-in (%.2f MB, %d samples)%s" % (
        label, phase, p["total"] / n, mb(p["total"]), n,
        "; file %.2f MB, %.2f MB free pages" % (mb(p["extra"]["file"]), mb(p["extra"]["free"]))
        if p["extra"] else ""))
    tables = {}
    for table, name, heap, toast, idx in p["objects"]:
        t = tables.setdefault(table, [0, 0, 0, []])
        t[0] += heap
        t[1] += toast
        t[2] += idx
        if name != table:
            t[3].append((name, idx))
    for table, (heap, toast, idx, idxs) in sorted(tables.items(), key=lambda kv: -sum(kv[1][:3])):
        tot = heap + toast + idx
        if tot * 200 < p["total"]:
            continue  # under 0.5 %
        parts = ["rows %.1f" % (heap / n)]
        if toast:
            parts.append("TOAST %.1f" % (toast / n))
        if idxs:
            parts.append("indexes %.1f: %s" % (idx / n, ", ".join("%s %.1f" % (k, v / n)
                                                                 for k, v in sorted(idxs, key=lambda x: -x[1]))))
        elif idx:
            parts.append("indexes %.1f" % (idx / n))
        print("    %-24s %7.1f B/sample  (%s)" % (table, tot / n, "; ".join(parts)))
    small = sum(sum(v[:3]) for v in tables.values() if sum(v[:3]) * 200 < p["total"])
    if small:
        print("    %-24s %7.1f B/sample" % ("(other tables)", small / n))


def main():
    ap = argparse.ArgumentParser(description="Issue #19 storage figures, current vs baseline.")
    ap.add_argument("--bin", default="build/release/clarity")
    ap.add_argument("--baseline", default=os.environ.get("BASELINE_BIN"),
                    help="another clarity binary to run the same in the same run (e.g. build/baseline/clarity)")
    ap.add_argument("--days", type=int, default=int(os.environ.get("STORAGE_BENCH_DAYS", "120")),
                    help="days of Apple Health export (about 0.3 MB each)")
    ap.add_argument("--sync-days", type=int, default=28, help="daily iOS app syncs after the export")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--uploads", type=int, default=int(os.environ.get("BENCH_UPLOADS", "200")),
                    help="upload_bench's uploads of 1,000 samples (0: skip)")
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("STORAGE_BENCH_REPEAT", "1")),
                    help="runs per binary, alternating; throughput figures are the best run's, RSS the largest")
    ap.add_argument("--keep", action="store_true", help="keep the export and the databases")
    ap.add_argument("--json", help="also write every figure to this file as JSON")
    a = ap.parse_args()
    bins = [("current", os.path.abspath(a.bin))]
    if a.baseline:
        bins.append(("baseline", os.path.abspath(a.baseline)))
    for _, b in bins:
        if not os.access(b, os.X_OK):
            raise SystemExit("no clarity binary at %s" % b)
    backends = [b for b in a.backends.split(",") if b]
    if "postgres" in backends and not os.environ.get("CLARITY_TEST_PG_URL"):
        # A throwaway server for the run, as the tests start theirs; it is
        # stopped and removed when this process exits.
        script = os.path.join(HERE, "..", "scripts", "pg-test-server")
        os.execv(script, [script, "--", sys.executable] + sys.argv)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print("machine: %d CPUs, load %s; binaries: %s" % (os.cpu_count(), " ".join(load),
                                                        ", ".join("%s %s" % x for x in bins)))
    work = tempfile.mkdtemp(prefix="clarity-storage-export-")
    xml = os.path.join(work, "export.xml")
    t0 = time.time()
    size, elements = health_gen.write_export(xml, a.days, a.seed)
    print("generated export.xml: %d days, %.1f MB, %d top-level elements (seed %d) in %.1f s" %
          (a.days, mb(size), elements, a.seed, time.time() - t0))
    pg = Postgres() if "postgres" in backends else None
    res = {}
    try:
        for backend in backends:
            # Baseline first, then current, alternating --repeat times.
            for rep in range(a.repeat):
                for label, b in reversed(bins):
                    t1 = time.time()
                    res.setdefault((backend, label), []).append(run_one(label, b, backend, xml, pg, a))
                    print("ran %s on %s in %.0f s" % (label, backend, time.time() - t1))
                    sys.stdout.flush()
        res = {k: best_of(v) for k, v in res.items()}
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept %s" % xml)

    ups = {}
    if a.uploads > 0:
        import upload_bench
        for rep in range(a.repeat):
            for label, b in reversed(bins):
                print("\n== HealthKit uploads over HTTP (bench/upload_bench.py), %s" % label)
                u = upload_bench.run(b, a.uploads)
                if label not in ups or u["samples_per_s"] > ups[label]["samples_per_s"]:
                    ups[label] = u

    print("\n== Disk per sample by table (bytes per stored sample)")
    for backend in backends:
        for label, _ in bins:
            r = res[(backend, label)]
            print("%s, %s: import stored %d of %d records (%d of unmapped types); app syncs stored %d, "
                  "skipped %d of %d sent (%.1f MB JSON)" % (
                      backend, label, r["import"]["stored"], r["import"]["records"], r["import"]["unknown"],
                      r["app"]["stored"], r["app"]["skipped"], r["app"]["sent"], mb(r["app"]["bytes"])))
            added = r["all-in"]["total"] - r["export"]["total"]
            if r["app"]["stored"] > 0:
                print("  the syncs added %.2f MB: %.1f B per sample they stored (%.1f B per sample sent)" % (
                    mb(added), added / r["app"]["stored"], added / max(1, r["app"]["sent"])))
            for phase in ("export", "all-in", "raw purged"):
                if phase in r:
                    breakdown(label, phase if phase != "all-in" else "all-in, raw kept", r[phase])
            if r["purged_bodies"] is None:
                print("  raw purge: not measured (libfaketime not installed: apt-get install faketime)")

    print("\n== Summary (issue #19), current vs baseline in the same run")
    rows = []
    for backend in backends:
        for phase, target, what in (("all-in", TARGET_ALL_IN, "disk B/sample, all-in, raw kept"),
                                    ("raw purged", TARGET_NO_RAW, "disk B/sample, raw bodies purged"),
                                    ("export", None, "disk B/sample, export only")):
            vals = [res[(backend, l)][phase]["total"] / res[(backend, l)][phase]["samples"]
                    if phase in res[(backend, l)] else None for l, _ in bins]
            rows.append(("%s %s" % (backend, what), vals, "<= %d" % target if target else "", "low"))
        rows.append(("%s import MB/s (command's figure)" % backend,
                     [res[(backend, l)]["import"]["mb_per_s"] for l, _ in bins], ">= %d" % TARGET_MBS, "high"))
        rows.append(("%s import MB/s (process wall)" % backend,
                     [res[(backend, l)]["import"]["wall_mb_per_s"] for l, _ in bins], "", "high"))
        rows.append(("%s import MB per CPU-s of the importer" % backend,
                     [res[(backend, l)]["import"]["cpu_mb_per_s"] for l, _ in bins], "", "high"))
        rows.append(("%s import peak RSS MB" % backend,
                     [res[(backend, l)]["import"]["rss_mb"] for l, _ in bins], "<= %d" % TARGET_RSS, "low"))
        rows.append(("%s app syncs samples/s sent" % backend,
                     [res[(backend, l)]["app"]["sent"] / res[(backend, l)]["app"]["seconds"] for l, _ in bins],
                     "", "high"))
    if ups:
        rows.append(("sqlite HealthKit upload samples/s (FULL)", [ups[l]["samples_per_s"] for l, _ in bins],
                     ">= %d" % TARGET_SPS, "high"))
        rows.append(("sqlite upload_bench disk B/sample", [ups[l]["bytes_per_sample"] for l, _ in bins], "", "low"))
    for backend in backends:
        counts = set(res[(backend, l)]["all-in"]["samples"] for l, _ in bins)
        if len(counts) > 1:
            print("NOTE: %s: the binaries stored different numbers of samples (%s): dedup differs" %
                  (backend, ", ".join(str(c) for c in sorted(counts))))
    head = "%-46s %12s" % ("figure", "current")
    if len(bins) > 1:
        head += " %12s %9s" % ("baseline", "ratio")
    print(head + "  target")
    for name, vals, target, _ in rows:
        line = "%-46s %12s" % (name, "%.1f" % vals[0] if vals[0] is not None else "-")
        if len(bins) > 1:
            line += " %12s %9s" % ("%.1f" % vals[1] if vals[1] is not None else "-",
                                   "%.2fx" % (vals[0] / vals[1]) if vals[0] and vals[1] else "-")
        print(line + "  " + target)
    if a.json:
        doc = {"days": a.days, "sync_days": a.sync_days, "seed": a.seed, "export_bytes": size,
               "binaries": dict(bins), "uploads": ups,
               "runs": {"%s/%s" % k: v for k, v in res.items()},
               "summary": [{"figure": n, "values": dict(zip([l for l, _ in bins], v)), "target": t}
                           for n, v, t, _ in rows]}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
