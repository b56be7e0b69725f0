"""Every way data comes in ends in an analysis and an insight (issue #15): the
JSON upload, the HealthKit upload, the streamed HTTP import and `clarity
import apple-health` all run the one ingest session (src/ingest/session.c),
whose commit queues the analysis job. Before the session, the CLI import
marked its upload completed and never queued anything, so imported data
never produced an insight."""
import datetime
import json
import os
import sqlite3
import time
import unittest
import uuid

from harness import Server, run_cli
from test_pipeline import LIMITS, Client, upload_week, wait_status

TZ = "-0500"


def export_week():
    """An Apple Health export.xml of one week (local -05:00): steps every 15
    minutes by day, heart rate every 10 minutes, and each night 23:00-07:00
    in bed with core, deep and REM sleep."""
    rows = []
    start = datetime.datetime(2026, 11, 14)

    def fmt(t):
        return t.strftime("%Y-%m-%d %H:%M:%S ") + TZ

    def rec(kind, t0, t1, value, unit=None):
        u = ' unit="%s"' % unit if unit else ""
        rows.append('<Record type="%s" sourceName="Watch"%s creationDate="%s" startDate="%s" endDate="%s" '
                    'value="%s"/>' % (kind, u, fmt(t1), fmt(t0), fmt(t1), value))

    for d in range(7):
        day = start + datetime.timedelta(days=d)
        for k in range(60):
            t = day + datetime.timedelta(hours=7, minutes=15 * k)
            rec("HKQuantityTypeIdentifierStepCount", t, t + datetime.timedelta(minutes=15), 150 + (k * 37) % 400,
                "count")
        for k in range(144):
            t = day + datetime.timedelta(minutes=10 * k)
            night = t.hour < 7 or t.hour >= 23
            rec("HKQuantityTypeIdentifierHeartRate", t, t, 55 + (k % 5) if night else 72 + (k % 11), "count/min")
        bed = day + datetime.timedelta(hours=23)
        rec("HKCategoryTypeIdentifierSleepAnalysis", bed, bed + datetime.timedelta(hours=8),
            "HKCategoryValueSleepAnalysisInBed")
        for off, stage, length in [(15, "AsleepCore", 120), (135, "AsleepDeep", 60), (195, "AsleepREM", 90),
                                   (285, "AsleepCore", 150), (435, "AsleepREM", 30)]:
            s = bed + datetime.timedelta(minutes=off)
            rec("HKCategoryTypeIdentifierSleepAnalysis", s, s + datetime.timedelta(minutes=length),
                "HKCategoryValueSleepAnalysis" + stage)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n'
            ' <ExportDate value="2026-11-22 10:00:00 -0500"/>\n' + "\n".join(rows) + "\n</HealthData>\n")


def insights_for(srv, upload_id):
    with sqlite3.connect(os.path.join(srv.dir, "clarity.db"), timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM insights i JOIN analyses a ON a.id = i.analysis_id"
                            " WHERE a.upload_id = ?", (upload_id,)).fetchone()[0]


class Doors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env=dict(LIMITS, WORKER_THREADS="1"))
        cls.xml = export_week()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def ends_in_insight(self, c, upload_id):
        st = wait_status(c, upload_id, ("completed", "failed"), timeout=120)
        self.assertEqual(st["status"], "completed", st)
        self.assertEqual(insights_for(self.srv, upload_id), 1)

    def test_cli_import_ends_in_analysis_and_insight(self):
        c = Client(self.srv)
        path = os.path.join(self.srv.dir, "export-%s.xml" % uuid.uuid4().hex[:8])
        with open(path, "w") as f:
            f.write(self.xml)
        rc, out, err = run_cli(["import", "apple-health", path, "--user", c.email.upper()], env=self.srv.env,
                               cwd=self.srv.dir, timeout=120)
        self.assertEqual(rc, 0, err)
        rep = json.loads(out)
        self.assertEqual(rep["status"], "received", rep)
        self.assertGreater(rep["stored"], 1000)
        # The serve process's worker picks the queued job up.
        self.ends_in_insight(c, rep["upload_id"])
        with sqlite3.connect(os.path.join(self.srv.dir, "clarity.db"), timeout=30) as conn:
            actions = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE resource_id = ?",
                                                  (rep["upload_id"],))]
        self.assertIn("health_data.import", actions)

    def test_cli_import_of_a_broken_export_fails_the_upload(self):
        c = Client(self.srv)
        path = os.path.join(self.srv.dir, "broken-%s.xml" % uuid.uuid4().hex[:8])
        with open(path, "w") as f:
            f.write(self.xml.replace("</HealthData>", "<Record type="))
        rc, out, err = run_cli(["import", "apple-health", path, "--user", c.email], env=self.srv.env,
                               cwd=self.srv.dir, timeout=120)
        self.assertEqual(rc, 1, out)
        rep = json.loads(out)
        self.assertEqual(rep["status"], "failed")
        status, _, st = c.call("GET", "/api/v1/healthkit/status/" + rep["upload_id"])
        self.assertEqual(status, 200, st)
        self.assertEqual(st["status"], "failed")
        self.assertTrue(st["error"])

    def test_http_import_ends_in_analysis_and_insight(self):
        c = Client(self.srv)
        status, _, doc = self.srv.json("POST", "/api/v1/healthkit/import", self.xml.encode(),
                                       {"Authorization": "Bearer " + c.token, "Content-Type": "application/xml"})
        self.assertEqual(status, 202, doc)
        self.ends_in_insight(c, doc["upload_id"])

    def test_healthkit_upload_ends_in_analysis_and_insight(self):
        c = Client(self.srv)
        self.ends_in_insight(c, upload_week(c))

    def test_json_upload_ends_in_analysis_and_insight(self):
        c = Client(self.srv)
        body = {"user_id": c.user_id, "upload_source": "apple_health", "client_timestamp": "2026-11-21T08:00:00Z",
                "metrics": [{"metric_id": str(uuid.uuid4()), "metric_type": "heart_rate",
                             "start_date": "2026-11-20T%02d:00:00Z" % h,
                             "biometric_data": {"heart_rate": 60 + h}} for h in range(24)]}
        # The longest X-Request-ID the server accepts (128) reaches the audit
        # row whole; it used to be cut to 63 characters.
        rid = "r" * 128
        status, _, doc = self.srv.json("POST", "/api/v1/health-data/upload", json.dumps(body),
                                       {"Authorization": "Bearer " + c.token, "Content-Type": "application/json",
                                        "X-Request-ID": rid})
        self.assertEqual(status, 201, doc)
        with sqlite3.connect(os.path.join(self.srv.dir, "clarity.db"), timeout=30) as conn:
            got = [r[0] for r in conn.execute("SELECT request_id FROM audit_log WHERE resource_id = ?",
                                              (doc["processing_id"],))]
        self.assertEqual(got, [rid])
        st = wait_status(c, doc["processing_id"], ("completed", "failed"), timeout=120)
        # A day of heart rate alone may be too little to analyse; either way
        # the job ran (it was queued), and the upload did not stay received.
        self.assertIn(st["status"], ("completed", "failed"), st)
        if st["status"] == "completed":
            self.assertEqual(insights_for(self.srv, doc["processing_id"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
