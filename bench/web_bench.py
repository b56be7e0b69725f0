#!/usr/bin/env python3
"""The web app's figures (issue 20) on a year of minute data for one user.

Data: web_fixture's export over 365 days with steps in 1-minute chunks over
the 16 waking hours (about 350,000 step samples), heart rate every 10
minutes, daily resting HR and HRV, nightly sleep stages — imported with
`clarity import apple-health`. Then, against `clarity serve` on SQLite over
loopback keep-alive:

  * GET /api/v1/series for the year (steps, points=2000 and points=365):
    median and p95 of 30 calls. Target: <= 20 ms. Baseline, same run: the
    same year streamed by GET /api/v1/health-data/export?data_type=steps, which
    is what a client had to read to draw it before /series existed.
  * GET /api/v1/rhythm for the year (IS/IV/RA/L5/M10 per week + cosinor).
  * In Chromium (when `scripts/install-deps --browser` has run): the first
    view interactive (target <= 1 s) and each chart of Sleep, Rhythm and
    Heart rendered after its data arrived (target <= 300 ms each).

Usage: bench/web_bench.py BUILD_DIR/clarity [days]
"""
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import web_fixture  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/release/clarity")
DAYS = int(sys.argv[2]) if len(sys.argv) > 2 else 365
NPM = os.path.join(SRC, "build", "swagger-ui", "node_modules")
EMAIL, PASSWORD = "bench@example.com", "Correct-Horse-9!battery"


def req(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, r.read()


def timed(c, path, auth, n=30):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        st, body = req(c, "GET", path, headers=auth)
        ts.append((time.perf_counter() - t) * 1000)
        assert st == 200, (st, body[:300])
    ts.sort()
    return statistics.median(ts), ts[int(len(ts) * 0.95) - 1], body


def main():
    d = tempfile.mkdtemp(prefix="clarity-web-bench-")
    env = dict(os.environ, PORT="0", HOST="127.0.0.1", DATABASE_URL="sqlite:%s/bench.db" % d, LOG_LEVEL="INFO",
               PASSWORD_HASH_PROFILE="interactive", WORKER_THREADS="0",
               RATE_LIMITS="auth=1000/60,upload=1000/60,api=1000000/60")
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    t = time.time()
    xml = os.path.join(d, "export.xml")
    with open(xml, "wb") as f:
        f.write(web_fixture.export_xml(days=DAYS, minute=True, end=end))
    print("export.xml: %.0f MB, %d days (generated in %.1f s)" % (os.path.getsize(xml) / 1e6, DAYS, time.time() - t))
    p = subprocess.Popen([BIN, "serve"], cwd=d, env=env, stderr=subprocess.PIPE)
    port = None
    try:
        for line in p.stderr:
            rec = json.loads(line)
            if rec.get("message") == "listening":
                port = rec["port"]
                break
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        st, _ = req(c, "POST", "/api/v1/auth/register", json.dumps(
            {"email": EMAIL, "password": PASSWORD, "first_name": "B", "last_name": "C", "terms_accepted": True,
             "privacy_policy_accepted": True}), {"Content-Type": "application/json"})
        assert st == 201, st
        t = time.time()
        r = subprocess.run([BIN, "import", "apple-health", xml, "--user", EMAIL], cwd=d, env=env,
                           capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stderr[-2000:]
        out = r.stdout.strip()
        summary = json.loads(out[out.index("{"):])
        print("imported %d samples in %.1f s (steps: %d)" % (
            summary["stored"], time.time() - t, summary["types"]["HKQuantityTypeIdentifierStepCount"]["samples"]))
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # the idle one was closed
        st, body = req(c, "POST", "/api/v1/auth/login", json.dumps({"email": EMAIL, "password": PASSWORD}),
                       {"Content-Type": "application/json"})
        auth = {"Authorization": "Bearer " + json.loads(body)["tokens"]["access_token"]}
        frm = (end - timedelta(days=DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        to = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        for pts in (2000, 365):
            med, p95, body = timed(c, "/api/v1/series?type=steps&from=%s&to=%s&points=%d" % (frm, to, pts), auth)
            s = json.loads(body)
            print("series steps, a year, points=%d: median %.1f ms, p95 %.1f ms (%d samples -> %d buckets, %d KB) "
                  "[target <= 20 ms]" % (pts, med, p95, s["samples"], len(s["points"]["t"]), len(body) // 1024))
        med, p95, body = timed(c, "/api/v1/series?type=heart_rate&from=%s&to=%s&points=2000" % (frm, to), auth)
        print("series heart_rate, a year, points=2000: median %.1f ms, p95 %.1f ms" % (med, p95))
        med, p95, body = timed(c, "/api/v1/rhythm?from=%s&to=%s" % (frm, to), auth, n=10)
        print("rhythm, a year (52 weeks of IS/IV/RA/L5/M10 + cosinor): median %.1f ms, p95 %.1f ms" % (med, p95))
        t = time.perf_counter()
        st, body = req(c, "GET", "/api/v1/health-data/export?data_type=steps", headers=auth)
        base = (time.perf_counter() - t) * 1000
        print("baseline: the same year's steps streamed by /health-data/export: %.0f ms, %.1f MB (%d rows)" % (
            base, len(body) / 1e6, body.count(b"\n")))
        if os.environ.get("NO_BROWSER"):
            pass
        elif shutil.which("node") and os.path.isdir(os.path.join(NPM, "playwright-core")):
            art = tempfile.mkdtemp(prefix="clarity-web-bench-art-")
            benv = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(NPM, "playwright-core"),
                        AXE_CORE=os.path.join(NPM, "axe-core"), CHROMIUM=shutil.which("chromium") or "/usr/bin/chromium",
                        BASE_URL="http://127.0.0.1:%d" % port, ARTIFACTS=art, MODE="bench", EMAIL=EMAIL,
                        PASSWORD=PASSWORD, HOME=d)
            r = subprocess.run(["node", os.path.join(SRC, "tests", "e2e", "web_app_browser.js")], env=benv,
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                print("browser: failed: " + r.stderr[-1500:])
            else:
                out = json.loads(r.stdout.strip().splitlines()[-1])
                print("browser: first view interactive %.0f ms [target <= 1000 ms]" % out["first_view_ms"])
                for v in ("sleep", "rhythm", "heart"):
                    print("browser: %s charts rendered in %s ms after their data [target <= 300 ms each]" % (
                        v, ", ".join("%.1f (%d points)" % (c["ms"], c["points"]) if c["points"] else "%.1f" % c["ms"]
                                     for c in out["views"][v]["charts"])))
                print("browser: screenshots in " + art)
        else:
            print("browser: skipped (scripts/install-deps --browser)")
    finally:
        p.terminate()
        p.wait(timeout=30)
        if os.environ.get("KEEP"):
            print("kept " + d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
