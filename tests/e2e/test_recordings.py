"""End-to-end research-recording upload (issue #20): POST /api/v1/recordings
over the real binary. A recording's epochs are stored as activity_count
samples of one upload; the worker's analysis of them gives the figures
`clarity analyze` gives on the same file; the upload has a status, shows in
/api/v1/uploads, dedups on re-upload, exports and deletes like any other;
bad files are 4xx problems that store nothing. Runs on SQLite and on
PostgreSQL (a throwaway server from scripts/pg-test-server)."""
import json
import os
import signal
import subprocess
import time
import unittest

from harness import BIN, Server, raw_connect, read_http_response
from test_analyze_formats import make_awd
from test_health_data import Client

SOURCE_DIR = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def leaves(doc, prefix=""):
    """{path: value} of every metric ({value, n|reason}) under doc."""
    out = {}
    if isinstance(doc, dict):
        if "value" in doc and ("n" in doc or "reason" in doc):
            out[prefix] = doc["value"]
            return out
        for k, v in doc.items():
            out.update(leaves(v, prefix + "." + k))
    return out


def analyze_cli(path, *args):
    p = subprocess.run([BIN, "analyze", path, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


class Recordings(unittest.TestCase):
    env = {}

    @classmethod
    def setUpClass(cls):
        env = {"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60"}
        env.update(cls.env)
        cls.srv = Server(env=env)
        cls.week = os.path.join(cls.srv.dir, "week.AWD")
        make_awd(cls.week, days=7)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def post(self, client, body, query="", content_type="application/octet-stream"):
        headers = {"Authorization": "Bearer " + client.token}
        if content_type:
            headers["Content-Type"] = content_type
        return self.srv.json("POST", "/api/v1/recordings" + query, body, headers)

    def wait_completed(self, c, uid, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _, st = c.call("GET", "/api/v1/healthkit/status/" + uid)
            self.assertEqual(status, 200, st)
            if st["status"] in ("completed", "failed"):
                return st
            time.sleep(0.2)
        self.fail("upload %s not analysed in %d s: %s" % (uid, timeout, st))

    def analysis_of(self, c, uid):
        status, _, doc = c.call("GET", "/api/v1/analyses?limit=20")
        self.assertEqual(status, 200, doc)
        for a in doc["data"]:
            if a["upload_id"] == uid:
                return a
        self.fail("no analysis for upload %s" % uid)

    def count_samples(self, c, uid):
        status, _, doc = c.call("GET", "/api/v1/health-data/" + uid)
        self.assertEqual(status, 200, doc)
        return doc

    def test_week_awd_matches_clarity_analyze_and_dedups_and_deletes(self):
        c = Client(self.srv)
        with open(self.week, "rb") as f:
            body = f.read()
        t0 = time.time()
        status, hdrs, doc = self.post(c, body, "?name=week.AWD&tz_offset_min=60")
        upload_s = time.time() - t0
        self.assertEqual(status, 202, doc)
        rec = doc["recording"]
        with open(os.path.join(SOURCE_DIR, "docs", "openapi.json")) as f:
            schemas = json.load(f)["components"]["schemas"]
        self.assertEqual(set(doc), set(schemas["RecordingImported"]["required"]))
        self.assertEqual(set(rec), set(schemas["RecordingReport"]["required"]))
        self.assertEqual(rec["format"], "awd")
        self.assertEqual(rec["epoch_s"], 60)
        self.assertEqual(rec["epochs"], 7 * 1440)
        self.assertEqual(rec["stored"], 7 * 1440)
        self.assertEqual(rec["duplicates"], 0)
        self.assertEqual(rec["start_local"], "2024-03-11T12:00")
        self.assertEqual(rec["end_local"], "2024-03-18T12:00")
        uid = doc["upload_id"]
        self.assertEqual({k.lower(): v for k, v in hdrs.items()}.get("location"), "/api/v1/healthkit/status/" + uid)
        print("week upload: %.3f s for %d epochs" % (upload_s, rec["epochs"]))

        st = self.wait_completed(c, uid)
        self.assertEqual(st["status"], "completed", st)
        self.assertEqual(st["total_metrics"], 7 * 1440)
        self.assertEqual(st["processed_metrics"], 7 * 1440)
        status, _, ups = c.call("GET", "/api/v1/uploads")
        self.assertEqual(status, 200, ups)
        mine = [u for u in ups["data"] if u["upload_id"] == uid]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["upload_source"], "research_recording")

        # The audit trail names the upload, as for the other upload routes.
        status, _, audit = c.call("GET", "/api/v1/auth/me/audit")
        self.assertEqual(status, 200, audit)
        self.assertIn("health_data.recording", [e.get("action") for e in audit["data"]], audit)

        # Samples: activity counts in UTC (local 12:00 at +01:00 is 11:00Z).
        status, _, lst = c.call("GET", "/api/v1/health-data?data_type=activity_count&limit=1000")
        self.assertEqual(status, 200, lst)
        first = sorted(lst["data"], key=lambda s: s["start_date"])[0]
        self.assertEqual(first["metric_type"], "activity_count")
        self.assertEqual(first["unit"], "count")
        self.assertEqual(first["source"], "Actiwatch (AWD)")

        # The worker's analysis gives the figures `clarity analyze` gives.
        an = self.analysis_of(c, uid)
        res = an["result"]
        self.assertEqual(res["window"]["start_local"], "2024-03-11T12:00")
        self.assertEqual(res["window"]["minutes"], 7 * 1440)
        self.assertEqual(an["coverage"]["activity_count_minutes"], 7 * 1440)
        cli = analyze_cli(self.week)
        want = leaves({"sleep": cli["sleep"], "circadian": cli["circadian"]})
        got = leaves({"sleep": res["sleep"], "circadian": res["circadian"]})
        self.assertGreater(len([v for v in want.values() if v is not None]), 15)
        for k, v in want.items():
            self.assertIn(k, got)
            if v is None:
                self.assertIsNone(got[k], k)
            else:
                self.assertIsNotNone(got[k], k)
                self.assertAlmostEqual(got[k], v, delta=1e-6 * max(1.0, abs(v)), msg=k)

        # The same file again: a new upload that stores nothing new.
        status, _, again = self.post(c, body, "?name=week.AWD&tz_offset_min=60")
        self.assertEqual(status, 202, again)
        self.assertEqual(again["recording"]["stored"], 0)
        self.assertEqual(again["recording"]["duplicates"], 7 * 1440)
        self.wait_completed(c, again["upload_id"])

        # Export carries the counts.
        status, _, body_exp = self.srv.request("GET", "/api/v1/health-data/export?data_type=activity_count",
                                               None, {"Authorization": "Bearer " + c.token})
        self.assertEqual(status, 200)
        rows = [json.loads(x) for x in body_exp.decode().splitlines() if x.strip()]
        self.assertEqual(len(rows), 7 * 1440)

        # Delete the upload: its samples go with it.
        status, _, d = c.call("DELETE", "/api/v1/health-data/" + uid)
        self.assertEqual(status, 200, d)
        status, _, lst = c.call("GET", "/api/v1/health-data?data_type=activity_count&limit=10")
        self.assertEqual(status, 200, lst)
        self.assertEqual(lst["data"], [])
        self.assertEqual(c.call("GET", "/api/v1/healthkit/status/" + uid)[0], 404)

    def test_30s_checked_in_recording_matches(self):
        """ref_d.AWD (30-s epochs, checked in): two epochs per minute."""
        c = Client(self.srv)
        path = os.path.join(DATA, "pyactigraphy", "ref_d.AWD")
        with open(path, "rb") as f:
            status, _, doc = self.post(c, f.read(), "?name=ref_d.AWD")
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["recording"]["epoch_s"], 30)
        uid = doc["upload_id"]
        self.assertEqual(self.wait_completed(c, uid)["status"], "completed")
        res = self.analysis_of(c, uid)["result"]
        cli = analyze_cli(path, "--window", "%dm" % res["window"]["minutes"])
        for k in ("interdaily_stability", "intradaily_variability", "relative_amplitude", "l5", "m10"):
            want, got = cli["circadian"][k]["value"], res["circadian"][k]["value"]
            if want is None:
                self.assertIsNone(got, k)
            else:
                self.assertAlmostEqual(got, want, delta=1e-6 * max(1.0, abs(want)), msg=k)

    def test_csv_detected_by_contents(self):
        c = Client(self.srv)
        lines = ["timestamp,value"] + ["2024-05-01T%02d:%02d:00,%d" % (m // 60, m % 60, m % 50) for m in range(600)]
        status, _, doc = self.post(c, ("\n".join(lines) + "\n").encode(), "?name=sub01.csv", "text/csv")
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["recording"]["format"], "csv")
        self.assertEqual(doc["recording"]["epochs"], 600)
        self.wait_completed(c, doc["upload_id"])

    def test_bad_inputs_are_problems_and_store_nothing(self):
        c = Client(self.srv)
        with open(self.week, "rb") as f:
            good = f.read()
        cases = [
            ("truncated AWD", good[:20], "?name=x.AWD", "application/octet-stream", 422),
            ("wrong format", b"\x89PNG\r\n\x1a\n\x00\x00garbage", "?name=x.csv", "application/octet-stream", 422),
            ("empty", b"", "?name=x.csv", "text/csv", 422),
            ("json", b"{}", "", "application/json", 415),
            ("zip", b"PK\x03\x04", "", "application/zip", 415),
            ("agd", b"SQLite format 3\x00", "?name=x.agd", "application/octet-stream", 415),
            ("bad tz", good, "?name=x.AWD&tz_offset_min=5000", "application/octet-stream", 422),
            ("bad epoch", good, "?name=x.AWD&epoch=abc", "application/octet-stream", 422),
            ("missing counts", b"2024-05-01T00:00:00,NaN\n2024-05-01T00:01:00,\n", "?name=x.csv", "text/csv", 422),
        ]
        for label, body, q, ct, want in cases:
            with self.subTest(label):
                status, hdrs, doc = self.post(c, body, q, ct)
                self.assertEqual(status, want, (label, doc))
                self.assertTrue({k.lower(): v for k, v in hdrs.items()}.get("content-type", "").startswith("application/problem+json"), hdrs)
                self.assertIn("detail", doc)
        # too large: refused from Content-Length, before the body is read
        sock = raw_connect(self.srv.port)
        sock.sendall(("POST /api/v1/recordings?name=x.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n"
                      % (c.token, 64 * 1024 * 1024 + 1)).encode())
        status, hdrs, raw = read_http_response(sock)
        sock.close()
        self.assertEqual(status, 413, raw)
        self.assertTrue(hdrs.get("content-type", "").startswith("application/problem+json"), hdrs)
        status, _, ups = c.call("GET", "/api/v1/uploads")
        self.assertEqual(ups["data"], [], "a refused recording left an upload")
        # no token: 401 before anything
        status, _, doc = self.srv.json("POST", "/api/v1/recordings", good, {"Content-Type": "text/plain"})
        self.assertEqual(status, 401, doc)


PG_INITDB = "/usr/lib/postgresql/15/bin/initdb"


@unittest.skipUnless(os.path.exists(PG_INITDB), "PostgreSQL 15 is not installed")
class RecordingsPostgres(Recordings):
    """The same tests on PostgreSQL (a throwaway server of its own)."""

    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, PG_TEST_OPTS="-c fsync=off")
        cls.pg = subprocess.Popen([os.path.join(SOURCE_DIR, "scripts", "pg-test-server")], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        url = None
        for raw in cls.pg.stdout:
            line = raw.decode().strip()
            if line.startswith("DATABASE_URL="):
                url = line.split("=", 1)[1]
                break
        if url is None:
            cls.stop_pg()
            raise RuntimeError("pg-test-server did not start")
        cls.env = {"DATABASE_URL": url}
        super().setUpClass()

    @classmethod
    def stop_pg(cls):
        try:
            os.killpg(cls.pg.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        cls.pg.wait(60)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "srv", None) is not None:
            cls.srv.stop()
        cls.stop_pg()


if __name__ == "__main__":
    unittest.main()
