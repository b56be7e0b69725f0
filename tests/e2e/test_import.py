"""End-to-end Apple Health import over HTTP: export.xml and export.zip are
streamed into the parser; samples land with their time zones; malformed
exports are refused with a problem and leave a failed upload; the caller
must be authenticated before any body is read."""
import io
import json
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
        self.assertEqual(page["data"][0]["start_date"], "2026-11-20T12:05:00.000Z")
        self.assertEqual(page["data"][0]["data"]["tz_offset_min"], -300)
        _, _, page = c.call("GET", "/api/v1/health-data?data_type=steps")
        self.assertEqual(page["data"][0]["start_date"], "2026-11-20T07:00:00.000Z")

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
