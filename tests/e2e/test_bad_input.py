"""Bad input found by the attack run (#16.7, #16.8, #16.9): each answered with
a clear 4xx that changes nothing, never a 5xx; text is never cut in the
middle of a character; values are range-checked after unit conversion; the
CSV export guards every formula prefix. On SQLite and, when PostgreSQL 15 is
installed, on PostgreSQL (which refused the cut text that SQLite kept)."""
import csv
import io
import json
import os
import signal
import subprocess
import unittest
import uuid

from harness import Server

PASSWORD = "Correct-Horse-9"
LIMITS = {"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60,insights=1000/60"}
PG_INITDB = "/usr/lib/postgresql/15/bin/initdb"
SOURCE_DIR = os.environ.get("CLARITY_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
T0 = "2026-11-20T08:00:00Z"


class Client:
    def __init__(self, srv):
        self.srv = srv
        email = "bad-%s@example.com" % uuid.uuid4().hex[:10]
        body = {"email": email, "password": PASSWORD, "first_name": "Ann", "last_name": "Lee",
                "terms_accepted": True, "privacy_policy_accepted": True}
        status, _, doc = srv.json("POST", "/api/v1/auth/register", json.dumps(body),
                                  {"Content-Type": "application/json"})
        assert status == 201, doc
        self.user_id = doc["user_id"]
        status, _, doc = srv.json("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": PASSWORD}),
                                  {"Content-Type": "application/json"})
        assert status == 200, doc
        self.token = doc["tokens"]["access_token"]

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        h.update(headers or {})
        return self.srv.json(method, path, json.dumps(body) if body is not None else None, h)

    def raw(self, method, path, headers=None):
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        return self.srv.request(method, path, None, h)

    def samples(self):
        status, _, page = self.call("GET", "/api/v1/health-data")
        assert status == 200, page
        return page["data"]


def hk_quantity(identifier, value, unit, **extra):
    q = {"identifier": identifier, "value": value, "unit": unit, "start_date": T0, "end_date": T0}
    q.update(extra)
    return q


class BadInput:
    def test_unknown_member_and_another_users_id_is_403_not_500(self):
        """#16.7: the unknown member's error and the ownership refusal were two
        replies to one request, answered as a 500."""
        a, b = Client(self.srv), Client(self.srv)
        for path, body in (
                ("/api/v1/health-data/upload", {"user_id": b.user_id, "colour": "red", "metrics": [],
                                                "upload_source": "x", "client_timestamp": T0}),
                ("/api/v1/healthkit/upload", {"user_id": b.user_id, "colour": "red", "quantity_samples": "x"}),
                ("/api/v1/healthkit", {"user_id": b.user_id, "colour": "red", "samples": "x"}),
                ("/api/v1/pat/analysis", {"user_id": b.user_id, "colour": "red", "step_data": "x"}),
                ("/api/v1/healthkit/sync", {"user_id": b.user_id, "colour": "red", "data_types": 1})):
            status, _, doc = a.call("POST", path, body)
            self.assertEqual(status, 403, (path, doc))
            self.assertEqual(doc["type"], "https://clarity.dev/problems/authorization-denied")
        self.assertEqual(a.samples(), [])

    def test_huge_numbers_in_generate_are_422_not_503(self):
        """#16.7: numbers past what any metric holds overflowed the generator
        into inf and came back as 503 "out of memory"."""
        a = Client(self.srv)
        for results in ({"healthkit_sleep": {"total_sleep_mean_min": {"value": 1e308}}},
                        {"sleep": {"total_sleep_mean_min": {"value": -1e300}, "efficiency_mean_pct": 1e200}},
                        {"activity": {"steps_mean": [1, 2, 1e30]}}):
            status, _, doc = a.call("POST", "/api/v1/insights/generate", {"analysis_results": results})
            self.assertEqual(status, 422, (results, doc))
            self.assertTrue(doc["errors"][0]["pointer"].startswith("/analysis_results/"), doc)
        status, _, hist = a.call("GET", "/api/v1/insights/history/" + a.user_id)
        self.assertEqual(hist["data"]["total_count"], 0)
        # An ordinary result still works.
        status, _, doc = a.call("POST", "/api/v1/insights/generate",
                                {"analysis_results": {"healthkit_sleep": {"total_sleep_mean_min": {"value": 400}}}})
        self.assertEqual(status, 200, doc)

    def test_text_limits_are_bytes_and_nothing_is_cut(self):
        """#16.8: 'é' is 2 bytes. The limits were checked in characters and the
        copies cut in bytes, in the middle of a character: SQLite kept bytes
        no JSON reply can carry (the member vanished), PostgreSQL refused the
        valid upload."""
        a = Client(self.srv)
        fits_source, fits_device = "é" * 31, "é" * 63   # 62 and 126 bytes
        metric = {"metric_type": "heart_rate", "biometric_data": {"heart_rate": 70}, "start_date": T0,
                  "end_date": T0, "device_id": fits_device}
        status, _, up = a.call("POST", "/api/v1/health-data/upload",
                               {"user_id": a.user_id, "metrics": [metric], "upload_source": fits_source,
                                "client_timestamp": T0})
        self.assertEqual(status, 201, up)
        status, _, st = a.call("GET", "/api/v1/health-data/processing/" + up["processing_id"])
        self.assertEqual(st["upload_source"], fits_source)
        self.assertEqual([s["device"] for s in a.samples()], [fits_device])
        for body, pointer in (
                ({"upload_source": "é" * 32, "metrics": [dict(metric, device_id="d")]}, "/upload_source"),
                ({"upload_source": "x", "metrics": [dict(metric, device_id="é" * 64)]}, "/metrics/0/device_id")):
            body.update(user_id=a.user_id, client_timestamp=T0)
            status, _, doc = a.call("POST", "/api/v1/health-data/upload", body)
            self.assertEqual(status, 422, doc)
            self.assertEqual([e["pointer"] for e in doc["errors"]], [pointer])
            self.assertIn("bytes", doc["errors"][0]["message"])
        # The native HealthKit upload: source_name and device.
        ok = hk_quantity("HKQuantityTypeIdentifierHeartRate", 70, "count/min", source_name="é" * 63,
                         device="é" * 63, start_date="2026-11-20T09:00:00Z", end_date="2026-11-20T09:00:00Z")
        status, _, doc = a.call("POST", "/api/v1/healthkit/upload", {"user_id": a.user_id, "quantity_samples": [ok]})
        self.assertEqual(status, 202, doc)
        got = [s for s in a.samples() if s["source"] != "api"]
        self.assertEqual([(s["source"], s["device"]) for s in got], [("é" * 63, "é" * 63)])
        for name in ("source_name", "device"):
            bad = dict(ok, **{name: "é" * 64})
            status, _, doc = a.call("POST", "/api/v1/healthkit/upload",
                                    {"user_id": a.user_id, "quantity_samples": [bad]})
            self.assertEqual(status, 422, doc)
            self.assertEqual([e["pointer"] for e in doc["errors"]], ["/quantity_samples/0/" + name])
        self.assertEqual(len(a.samples()), 2)

    def test_a_missing_start_date_never_puts_start_after_end(self):
        """Found by the health_upload fuzz driver in CI: with no start_date
        the start defaulted to client_timestamp, which can be after end_date,
        and the sample was stored ending before it began. Without start_date
        a sample is now a point at end_date (docs/api.md)."""
        a = Client(self.srv)
        late = "2030-01-01T00:00:00Z"
        metric = {"metric_type": "heart_rate", "biometric_data": {"heart_rate": 72}, "end_date": T0}
        status, _, up = a.call("POST", "/api/v1/health-data/upload",
                               {"user_id": a.user_id, "metrics": [metric], "upload_source": "x",
                                "client_timestamp": late})
        self.assertEqual(status, 201, up)
        got = a.samples()
        self.assertEqual([(s["start_date"], s["end_date"]) for s in got], [(T0, T0)])
        # Both missing: a point at the client's time, as before.
        status, _, up = a.call("POST", "/api/v1/health-data/upload",
                               {"user_id": a.user_id, "metrics": [{"metric_type": "heart_rate",
                                                                   "biometric_data": {"heart_rate": 70}}],
                                "upload_source": "x", "client_timestamp": late})
        self.assertEqual(status, 201, up)
        self.assertIn((late, late), [(s["start_date"], s["end_date"]) for s in a.samples()])

    def test_healthkit_values_are_range_checked_after_conversion(self):
        """#16.9: the HealthKit route stored inf (1.7e308 mi is inf km) and 1e308."""
        a = Client(self.srv)
        for q in (hk_quantity("HKQuantityTypeIdentifierDistanceWalkingRunning", 1.7e308, "mi"),
                  hk_quantity("HKQuantityTypeIdentifierHeartRate", 1e308, "count/min"),
                  hk_quantity("HKQuantityTypeIdentifierBodyTemperature", 1e300, "degF"),
                  hk_quantity("HKQuantityTypeIdentifierStepCount", 1e12, "count"),
                  hk_quantity("HKQuantityTypeIdentifierHeartRate", -5, "count/min")):
            status, _, doc = a.call("POST", "/api/v1/healthkit/upload", {"user_id": a.user_id, "quantity_samples": [q]})
            self.assertEqual(status, 422, (q, doc))
            self.assertEqual([e["pointer"] for e in doc["errors"]], ["/quantity_samples/0/value"], doc)
        wk = {"activity_type": "HKWorkoutActivityTypeRunning", "start_date": T0, "end_date": "2026-11-20T08:30:00Z",
              "total_energy_burned": 1e308}
        status, _, doc = a.call("POST", "/api/v1/healthkit/upload", {"user_id": a.user_id, "workouts": [wk]})
        self.assertEqual(status, 422, doc)
        self.assertEqual([e["pointer"] for e in doc["errors"]], ["/workouts/0/total_energy_burned"], doc)
        app = {"sample_type": "stepCount", "value": 1e308, "unit": "count", "start_date": T0, "end_date": T0}
        status, _, doc = a.call("POST", "/api/v1/healthkit", {"user_id": a.user_id, "samples": [app],
                                                             "timestamp": T0})
        self.assertEqual(status, 422, doc)
        self.assertEqual([e["pointer"] for e in doc["errors"]], ["/samples/0/value"])
        self.assertEqual(a.samples(), [])
        # The edges just inside are stored.
        ok = [hk_quantity("HKQuantityTypeIdentifierHeartRate", 300, "count/min"),
              hk_quantity("HKQuantityTypeIdentifierBodyTemperature", 98.6, "degF", start_date="2026-11-20T08:01:00Z",
                          end_date="2026-11-20T08:01:00Z")]
        status, _, doc = a.call("POST", "/api/v1/healthkit/upload", {"user_id": a.user_id, "quantity_samples": ok})
        self.assertEqual(status, 202, doc)
        self.assertEqual(len(a.samples()), 2)

    def test_csv_export_guards_a_leading_tab(self):
        """#16.9: a leading tab (or CR) before a formula slipped past the guard."""
        a = Client(self.srv)
        names = ["\t=HYPERLINK(\"http://x\")", "\r=1+1", "=1+1", "plain"]
        q = [hk_quantity("HKQuantityTypeIdentifierHeartRate", 60 + i, "count/min", source_name=n,
                         start_date="2026-11-20T08:0%d:00Z" % i, end_date="2026-11-20T08:0%d:00Z" % i)
             for i, n in enumerate(names)]
        status, _, doc = a.call("POST", "/api/v1/healthkit/upload", {"user_id": a.user_id, "quantity_samples": q})
        self.assertEqual(status, 202, doc)
        status, _, body = a.raw("GET", "/api/v1/health-data/export", {"Accept": "text/csv"})
        self.assertEqual(status, 200)
        rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
        self.assertEqual(sorted(r["source"] for r in rows), sorted("'" + n if n != "plain" else n for n in names))


class SQLite(BadInput, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env=dict(LIMITS))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()


@unittest.skipUnless(os.path.exists(PG_INITDB), "PostgreSQL 15 is not installed")
class PostgreSQL(BadInput, unittest.TestCase):
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
            cls.tearDownClass()
            raise RuntimeError("pg-test-server did not start")
        cls.srv = Server(env=dict(LIMITS, DATABASE_URL=url))

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "srv", None) is not None:
            cls.srv.stop()
        try:
            os.killpg(cls.pg.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        cls.pg.wait(60)


if __name__ == "__main__":
    unittest.main()
