"""End-to-end Apple Health import over HTTP: export.xml and export.zip are
streamed into the parser; samples land with their time zones; malformed
exports are refused with a problem and leave a failed upload; the caller
must be authenticated before any body is read."""
import io
import json
import os
import socket
import sqlite3
import time
import unittest
import uuid
import zipfile

from harness import Server
from test_health_data import Client

EXPORT = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout)*)>
]>
<HealthData locale="en_US">
 <ExportDate value="2026-11-21 10:00:00 -0500"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth=""/>
 <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Watch" unit="count/min" creationDate="2026-11-20 07:00:05 -0500" startDate="2026-11-20 07:00:00 -0500" endDate="2026-11-20 07:00:00 -0500" value="61">
  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="1"/>
 </Record>
 <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Watch" unit="count/min" creationDate="2026-11-20 07:05:05 -0500" startDate="2026-11-20 07:05:00 -0500" endDate="2026-11-20 07:05:00 -0500" value="63"/>
 <Record type="HKQuantityTypeIdentifierStepCount" sourceName="Phone" unit="count" creationDate="2026-11-20 08:10:00 +0100" startDate="2026-11-20 08:00:00 +0100" endDate="2026-11-20 08:10:00 +0100" value="420"/>
 <Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="Watch" creationDate="2026-11-20 06:00:00 -0500" startDate="2026-11-20 01:00:00 -0500" endDate="2026-11-20 02:00:00 -0500" value="HKCategoryValueSleepAnalysisAsleepDeep"/>
 <Record type="HKQuantityTypeIdentifierDietaryCaffeine" sourceName="App" unit="mg" creationDate="2026-11-20 09:00:00 -0500" startDate="2026-11-20 09:00:00 -0500" endDate="2026-11-20 09:00:00 -0500" value="80"/>
 <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="30" durationUnit="min" totalDistance="5" totalDistanceUnit="km" totalEnergyBurned="300" totalEnergyBurnedUnit="kcal" sourceName="Watch" creationDate="2026-11-20 18:31:00 -0500" startDate="2026-11-20 18:00:00 -0500" endDate="2026-11-20 18:30:00 -0500"/>
</HealthData>
"""


class Import(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60"})

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def post(self, client, body, content_type):
        headers = {"Authorization": "Bearer " + client.token, "Content-Type": content_type}
        return self.srv.json("POST", "/api/v1/healthkit/import", body, headers)

    def test_xml_then_zip(self):
        c = Client(self.srv)
        status, hdrs, doc = self.post(c, EXPORT.encode(), "application/xml")
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "queued")
        rep = doc["import"]
        self.assertEqual(rep["records"], 6)
        self.assertGreaterEqual(rep["stored"], 5)
        self.assertIn("HKQuantityTypeIdentifierDietaryCaffeine", json.dumps(rep))
        uid = doc["upload_id"]
        status, _, st = c.call("GET", "/api/v1/healthkit/status/" + uid)
        self.assertEqual(status, 200, st)
        self.assertEqual(st["upload_source"], "apple_health_export")
        _, _, page = c.call("GET", "/api/v1/health-data?data_type=heart_rate")
        self.assertEqual(sorted(s["value"] for s in page["data"]), [61, 63])
        self.assertEqual(page["data"][0]["start_date"], "2026-11-20T12:05:00Z")
        self.assertEqual(page["data"][0]["data"]["tz_offset_min"], -300)
        _, _, page = c.call("GET", "/api/v1/health-data?data_type=steps")
        self.assertEqual(page["data"][0]["start_date"], "2026-11-20T07:00:00Z")

        # The same export zipped, as the Health app writes it: nothing new.
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("apple_health_export/export.xml", EXPORT)
        status, _, doc = self.post(c, buf.getvalue(), "application/zip")
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["import"]["stored"], 0)

        # Someone else cannot see the import.
        other = Client(self.srv)
        self.assertEqual(other.call("GET", "/api/v1/healthkit/status/" + uid)[0], 404)

    def test_malformed_export_refused_and_upload_failed(self):
        c = Client(self.srv)
        bad = EXPORT.replace("</HealthData>", "<Record type=")
        status, hdrs, doc = self.post(c, bad.encode(), "application/xml")
        self.assertEqual(status, 422, doc)
        self.assertEqual(hdrs["content-type"], "application/problem+json")
        self.assertIn("line", doc["errors"][0]["message"])
        status, _, doc = self.post(c, b"PK\x03\x04 not really a zip", "application/zip")
        self.assertEqual(status, 422, doc)

    def test_refused_before_the_body(self):
        status, _, doc = self.srv.json("POST", "/api/v1/healthkit/import", EXPORT.encode(),
                                       {"Content-Type": "application/xml"})
        self.assertEqual(status, 401, doc)
        c = Client(self.srv)
        status, _, doc = self.post(c, b"{}", "application/json")
        self.assertEqual(status, 415, doc)


def peak_rss_kb(srv):
    """The server's peak resident set (VmHWM), in KiB."""
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class HostileImports(unittest.TestCase):
    """Issue #16: exports built to exhaust memory or time (docs/security.md).
    Sizes are bounded so that the tests stay cheap on a shared machine."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60"})

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def post(self, client, body, content_type):
        headers = {"Authorization": "Bearer " + client.token, "Content-Type": content_type}
        return self.srv.json("POST", "/api/v1/healthkit/import", body, headers)

    def test_nested_xml_refused_with_flat_memory(self):
        """(3) 3 MB of nested elements cost ~140 MB before the depth limit."""
        c = Client(self.srv)
        self.post(c, EXPORT.encode(), "application/xml")  # warm up
        base = peak_rss_kb(self.srv)
        body = b"<HealthData>" + b"<a>" * 1000000
        status, hdrs, doc = self.post(c, body, "application/xml")
        self.assertEqual(status, 422, doc)
        self.assertEqual(hdrs["content-type"], "application/problem+json")
        self.assertIn("deeper than 16 levels", doc["errors"][0]["message"])
        grew = peak_rss_kb(self.srv) - base
        self.assertLess(grew, 24 * 1024, "peak RSS grew %d KiB" % grew)
        # The upload is left failed, and nothing else changed.
        _, _, page = c.call("GET", "/api/v1/health-data")
        self.assertEqual(len(page["data"]), 6 - 1)  # the warm-up's samples only (caffeine is unknown)

    def test_zip_bomb_refused(self):
        """(4) 200 MiB of XML deflated into ~200 KiB (1000:1) used to be
        parsed whole; now refused once it inflates past 100x its size."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            with z.open("apple_health_export/export.xml", "w", force_zip64=True) as f:
                f.write(b"<HealthData>")
                block = b" " * (1 << 20)
                for _ in range(200):
                    f.write(block)
                f.write(b"</HealthData>")
        body = buf.getvalue()
        self.assertLess(len(body), 400 * 1024)
        c = Client(self.srv)
        base = peak_rss_kb(self.srv)
        t0 = time.time()
        status, hdrs, doc = self.post(c, body, "application/zip")
        self.assertEqual(status, 422, doc)
        self.assertIn("zip bomb", doc["errors"][0]["message"])
        self.assertLess(time.time() - t0, 30)
        grew = peak_rss_kb(self.srv) - base
        self.assertLess(grew, 24 * 1024, "peak RSS grew %d KiB" % grew)


class InterruptedImport(unittest.TestCase):
    def test_import_killed_mid_stream_is_failed_at_restart(self):
        """(4) An import whose process was killed mid-stream stayed
        `processing` forever; past its lease (IMPORT_STALE_SECONDS) the next
        start marks it failed with a reason."""
        env = {"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60", "IMPORT_STALE_SECONDS": "1"}
        srv = Server(env=env)
        again = None
        try:
            c = Client(srv)
            head = EXPORT.split("</HealthData>")[0].encode()
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(("POST /api/v1/healthkit/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: application/xml\r\nContent-Length: %d\r\n\r\n"
                       % (c.token, 10 * 1024 * 1024)).encode() + head)
            db = os.path.join(srv.dir, "clarity.db")
            upload_id, deadline = None, time.time() + 30
            while upload_id is None and time.time() < deadline:
                with sqlite3.connect(db, timeout=10) as con:
                    row = con.execute("SELECT id, status FROM uploads WHERE user_id = ?", (c.user_id,)).fetchone()
                if row is not None:
                    upload_id = row[0]
                    self.assertEqual(row[1], "processing")
                else:
                    time.sleep(0.05)
            self.assertIsNotNone(upload_id)
            srv.proc.kill()
            srv.wait()
            s.close()
            time.sleep(1.5)  # past the 1 s lease
            again = Server(env=env, workdir=srv.dir)
            status, _, st = again.json("GET", "/api/v1/healthkit/status/" + upload_id,
                                       headers={"Authorization": "Bearer " + c.token})
            self.assertEqual(status, 200, st)
            self.assertEqual(st["status"], "failed", st)
            self.assertIn("interrupted", st["error"])
        finally:
            if again is not None:
                again.stop()
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
