"""End-to-end health data: validated uploads, native HealthKit samples with
unit mapping and deduplication, status, listing with filters and keyset
pagination, streamed export, deletion, ownership and encryption at rest —
over the real binary and a real SQLite file."""
import csv
import io
import json
import os
import unittest
import uuid

from harness import Server

PASSWORD = "Correct-Horse-9"
T0 = "2026-11-20T08:00:00Z"


class Client:
    def __init__(self, srv):
        self.srv = srv
        self.email = "hd-%s@example.com" % uuid.uuid4().hex[:10]
        body = {"email": self.email, "password": PASSWORD, "first_name": "Ann", "last_name": "Lee",
                "terms_accepted": True, "privacy_policy_accepted": True}
        status, _, doc = srv.json("POST", "/api/v1/auth/register", json.dumps(body),
                                  {"Content-Type": "application/json"})
        assert status == 201, doc
        self.user_id = doc["user_id"]
        status, _, doc = srv.json("POST", "/api/v1/auth/login", json.dumps({"email": self.email, "password": PASSWORD}),
                                  {"Content-Type": "application/json"})
        assert status == 200, doc
        self.token = doc["tokens"]["access_token"]

    def headers(self, extra=None):
        h = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        h.update(extra or {})
        return h

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body) if body is not None else None
        return self.srv.json(method, path, data, self.headers(headers))

    def raw(self, method, path, headers=None):
        return self.srv.request(method, path, None, self.headers(headers))


def upload(client, metrics, **extra):
    body = {"user_id": client.user_id, "metrics": metrics, "upload_source": "apple_health",
            "client_timestamp": T0}
    body.update(extra)
    return client.call("POST", "/api/v1/health-data/upload", body)


def hr(value, **extra):
    m = {"metric_type": "heart_rate", "biometric_data": {"heart_rate": value}, "start_date": T0, "end_date": T0}
    m.update(extra)
    return m


class HealthData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60"})
        cls.a = Client(cls.srv)
        cls.b = Client(cls.srv)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_upload_status_list_get_delete(self):
        metrics = [
            hr(72, metric_id=str(uuid.uuid4())),
            {"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 120,
                                                                  "blood_pressure_diastolic": 80}},
            {"metric_type": "blood_oxygen", "biometric_data": {"oxygen_saturation": 97}},
            {"metric_type": "activity_level", "activity_data": {"steps": 8000, "distance": 5.5},
             "start_date": "2026-11-20T00:00:00Z", "end_date": "2026-11-20T23:59:00Z"},
            {"metric_type": "sleep_analysis", "sleep_data": {
                "total_sleep_minutes": 420, "sleep_efficiency": 0.9, "time_to_sleep_minutes": 12, "wake_count": 2,
                "sleep_stages": {"awake": 20, "light": 200, "deep": 90, "rem": 110},
                "sleep_start": "2026-11-19T23:00:00Z", "sleep_end": "2026-11-20T06:10:00Z"}},
            {"metric_type": "mood_assessment", "mental_health_data": {"mood_score": "good", "stress_level": 3,
                                                                       "notes": "NOTE-MARKER-7731"}},
            {"metric_type": "environmental", "metadata": {"noise_db": 40}},
        ]
        status, hdrs, doc = upload(self.a, metrics)
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["status"], "received")
        self.assertEqual(doc["accepted_metrics"], len(metrics))
        self.assertEqual(doc["rejected_metrics"], 0)
        pid = doc["processing_id"]
        self.assertTrue(hdrs["location"].endswith(pid))

        status, _, st = self.a.call("GET", "/api/v1/health-data/processing/" + pid)
        self.assertEqual(status, 200, st)
        self.assertEqual(st["processing_id"], pid)
        self.assertIn(st["status"], ("received", "processing", "completed"))
        self.assertEqual(st["total_metrics"], doc["samples_stored"])

        status, _, page = self.a.call("GET", "/api/v1/health-data?data_type=heart_rate&limit=10")
        self.assertEqual(status, 200, page)
        self.assertTrue(page["data"])
        self.assertTrue(all(s["metric_type"] == "heart_rate" for s in page["data"]))

        status, _, one = self.a.call("GET", "/api/v1/health-data/" + pid)
        self.assertEqual(status, 200, one)
        types = {m["metric_type"] for m in one["metrics"]}
        for t in ("heart_rate", "blood_pressure", "blood_oxygen", "steps", "distance", "sleep_session",
                  "mood_assessment", "environmental"):
            self.assertIn(t, types)
        bp = [m for m in one["metrics"] if m["metric_type"] == "blood_pressure"][0]
        self.assertEqual((bp["value"], bp["value2"]), (120, 80))

        # The raw body is encrypted at rest: the database holds no plaintext.
        db = os.path.join(self.srv.dir, "clarity.db")
        blob = b""
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                with open(db + suffix, "rb") as f:
                    blob += f.read()
        self.assertNotIn(b'"upload_source":"apple_health"', blob)
        self.assertNotIn(b'"client_timestamp"', blob)

        # Another user cannot see it: 404, not 403.
        self.assertEqual(self.b.call("GET", "/api/v1/health-data/processing/" + pid)[0], 404)
        self.assertEqual(self.b.call("GET", "/api/v1/health-data/" + pid)[0], 404)
        self.assertEqual(self.b.call("DELETE", "/api/v1/health-data/" + pid)[0], 404)
        _, _, bpage = self.b.call("GET", "/api/v1/health-data?limit=1000")
        self.assertFalse([s for s in bpage["data"] if s["upload_id"] == pid])

        status, _, doc = self.a.call("DELETE", "/api/v1/health-data/" + pid)
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.a.call("GET", "/api/v1/health-data/" + pid)[0], 404)
        _, _, page = self.a.call("GET", "/api/v1/health-data?limit=1000")
        self.assertFalse([s for s in page["data"] if s["upload_id"] == pid])

    def test_user_id_must_be_caller(self):
        body = {"user_id": self.b.user_id, "metrics": [hr(70)], "upload_source": "x", "client_timestamp": T0}
        status, _, doc = self.a.call("POST", "/api/v1/health-data/upload", body)
        self.assertEqual(status, 403, doc)

    def test_validation_table(self):
        """One case per rule: each edge just inside is accepted, just outside refused with its pointer."""
        P = "/metrics/0"
        inside = [
            hr(30), hr(300),
            # Unknown members are ignored, known ones still validated (docs/api.md).
            hr(70, colour="red"),
            {"metric_type": "heart_rate", "biometric_data": {"heart_rate": 70, "pulse": 3}},
            {"metric_type": "heart_rate_variability", "biometric_data": {"heart_rate_variability": 0}},
            {"metric_type": "heart_rate_variability", "biometric_data": {"heart_rate_variability": 200}},
            {"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 250,
                                                                  "blood_pressure_diastolic": 150}},
            {"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 70,
                                                                  "blood_pressure_diastolic": 40}},
            {"metric_type": "blood_oxygen", "biometric_data": {"oxygen_saturation": 70}},
            {"metric_type": "blood_oxygen", "biometric_data": {"oxygen_saturation": 100}},
            {"metric_type": "respiratory_rate", "biometric_data": {"respiratory_rate": 5}},
            {"metric_type": "respiratory_rate", "biometric_data": {"respiratory_rate": 60}},
            {"metric_type": "body_temperature", "biometric_data": {"body_temperature": 35}},
            {"metric_type": "body_temperature", "biometric_data": {"body_temperature": 42}},
            {"metric_type": "blood_glucose", "biometric_data": {"blood_glucose": 50}},
            {"metric_type": "blood_glucose", "biometric_data": {"blood_glucose": 500}},
            {"metric_type": "activity_level", "activity_data": {"steps": 100000, "distance": 100,
                                                                  "active_energy": 5000, "exercise_minutes": 1440,
                                                                  "active_minutes": 0, "flights_climbed": 500,
                                                                  "vo2_max": 80, "resting_heart_rate": 30}},
            {"metric_type": "activity_level", "activity_data": {"steps": 0, "vo2_max": 10, "resting_heart_rate": 120}},
            {"metric_type": "stress_indicators", "mental_health_data": {"stress_level": 1, "anxiety_level": 10,
                                                                         "social_interaction_minutes": 1440,
                                                                         "meditation_minutes": 480,
                                                                         "notes": "x" * 1000}},
            {"metric_type": "cognitive_metrics", "mental_health_data": {"focus_rating": 10, "energy_level": 1}},
        ]
        for mood in ("very_low", "low", "neutral", "good", "excellent"):
            inside.append({"metric_type": "mood_assessment", "mental_health_data": {"mood_score": mood}})
        for m in inside:
            status, _, doc = upload(self.a, [m])
            self.assertEqual(status, 201, (m, doc))

        outside = [
            (hr(29.9), P + "/biometric_data/heart_rate"),
            (hr(300.1), P + "/biometric_data/heart_rate"),
            (hr("72"), P + "/biometric_data/heart_rate"),
            (hr(True), P + "/biometric_data/heart_rate"),
            ({"metric_type": "heart_rate_variability", "biometric_data": {"heart_rate_variability": 200.5}},
             P + "/biometric_data/heart_rate_variability"),
            ({"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 251,
                                                                   "blood_pressure_diastolic": 80}},
             P + "/biometric_data/blood_pressure_systolic"),
            ({"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 120,
                                                                   "blood_pressure_diastolic": 39}},
             P + "/biometric_data/blood_pressure_diastolic"),
            ({"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 120}},
             P + "/biometric_data/blood_pressure_diastolic"),
            ({"metric_type": "blood_oxygen", "biometric_data": {"oxygen_saturation": 69}},
             P + "/biometric_data/oxygen_saturation"),
            ({"metric_type": "blood_oxygen", "biometric_data": {"oxygen_saturation": 100.1}},
             P + "/biometric_data/oxygen_saturation"),
            ({"metric_type": "respiratory_rate", "biometric_data": {"respiratory_rate": 61}},
             P + "/biometric_data/respiratory_rate"),
            ({"metric_type": "body_temperature", "biometric_data": {"body_temperature": 34.9}},
             P + "/biometric_data/body_temperature"),
            ({"metric_type": "blood_glucose", "biometric_data": {"blood_glucose": 501}},
             P + "/biometric_data/blood_glucose"),
            ({"metric_type": "heart_rate", "biometric_data": {}}, P + "/biometric_data/heart_rate"),
            ({"metric_type": "heart_rate"}, P + "/biometric_data"),
            ({"metric_type": "heart_rate", "biometric_data": {"heart_rate": 70}, "sleep_data": {}},
             P + "/sleep_data"),
            ({"metric_type": "heart_rate", "biometric_data": {"pulse": 3}}, P + "/biometric_data"),
            ({"metric_type": "pulse_rate", "biometric_data": {"heart_rate": 70}}, P + "/metric_type"),
            (hr(70, start_date="yesterday"), P + "/start_date"),
            (hr(70, start_date="2026-11-20T08:00:00"), P + "/start_date"),
            (hr(70, start_date="2026-11-20T09:00:00Z", end_date="2026-11-20T08:00:00Z"), P + "/end_date"),
            (hr(70, metric_id="not-a-uuid-not-a-uuid-not-a-uuid-123"), P + "/metric_id"),
            ({"metric_type": "activity_level", "activity_data": {"steps": 100001}}, P + "/activity_data/steps"),
            ({"metric_type": "activity_level", "activity_data": {"steps": -1}}, P + "/activity_data/steps"),
            ({"metric_type": "activity_level", "activity_data": {"distance": 100.5}}, P + "/activity_data/distance"),
            ({"metric_type": "activity_level", "activity_data": {"active_energy": 5001}},
             P + "/activity_data/active_energy"),
            ({"metric_type": "activity_level", "activity_data": {"exercise_minutes": 1441}},
             P + "/activity_data/exercise_minutes"),
            ({"metric_type": "activity_level", "activity_data": {"flights_climbed": 501}},
             P + "/activity_data/flights_climbed"),
            ({"metric_type": "activity_level", "activity_data": {"vo2_max": 9}}, P + "/activity_data/vo2_max"),
            ({"metric_type": "activity_level", "activity_data": {"resting_heart_rate": 121}},
             P + "/activity_data/resting_heart_rate"),
            ({"metric_type": "activity_level", "activity_data": {}}, P + "/activity_data"),
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 0,
                                                               "sleep_start": "2026-11-19T23:00:00Z",
                                                               "sleep_end": "2026-11-19T23:10:00Z"}},
             P + "/sleep_data/total_sleep_minutes"),
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 400, "sleep_efficiency": 1.1,
                                                               "sleep_start": "2026-11-19T23:00:00Z",
                                                               "sleep_end": "2026-11-20T05:40:00Z"}},
             P + "/sleep_data/sleep_efficiency"),
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 400, "time_to_sleep_minutes": 181,
                                                               "sleep_start": "2026-11-19T23:00:00Z",
                                                               "sleep_end": "2026-11-20T05:40:00Z"}},
             P + "/sleep_data/time_to_sleep_minutes"),
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 400, "wake_count": 51,
                                                               "sleep_start": "2026-11-19T23:00:00Z",
                                                               "sleep_end": "2026-11-20T05:40:00Z"}},
             P + "/sleep_data/wake_count"),
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 400,
                                                               "sleep_start": "2026-11-20T05:40:00Z",
                                                               "sleep_end": "2026-11-19T23:00:00Z"}},
             P + "/sleep_data/sleep_end"),
            # 7 h in bed but 400 + 31 min claimed asleep: more than 30 min apart.
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 389,
                                                               "sleep_start": "2026-11-19T23:00:00Z",
                                                               "sleep_end": "2026-11-20T06:00:00Z"}},
             P + "/sleep_data/sleep_end"),
            ({"metric_type": "sleep_analysis", "sleep_data": {"total_sleep_minutes": 400,
                                                               "sleep_start": "2026-11-19T23:00:00Z",
                                                               "sleep_end": "2026-11-20T05:40:00Z",
                                                               "sleep_stages": {"deep": -1}}},
             P + "/sleep_data/sleep_stages/deep"),
            ({"metric_type": "mood_assessment", "mental_health_data": {"mood_score": "great"}},
             P + "/mental_health_data/mood_score"),
            ({"metric_type": "mood_assessment", "mental_health_data": {"stress_level": 3}},
             P + "/mental_health_data/mood_score"),
            ({"metric_type": "stress_indicators", "mental_health_data": {"stress_level": 0}},
             P + "/mental_health_data/stress_level"),
            ({"metric_type": "stress_indicators", "mental_health_data": {"anxiety_level": 11}},
             P + "/mental_health_data/anxiety_level"),
            ({"metric_type": "stress_indicators", "mental_health_data": {"meditation_minutes": 481}},
             P + "/mental_health_data/meditation_minutes"),
            ({"metric_type": "stress_indicators", "mental_health_data": {"notes": "x" * 1001}},
             P + "/mental_health_data/notes"),
            ({"metric_type": "environmental"}, P + "/metadata"),
        ]
        for m, pointer in outside:
            status, _, doc = upload(self.a, [m])
            self.assertEqual(status, 422, (m, doc))
            pointers = [e["pointer"] for e in doc["errors"]]
            self.assertIn(pointer, pointers, (m, doc))

    def test_upload_level_errors_listed_together_and_nothing_stored(self):
        _, _, before = self.a.call("GET", "/api/v1/health-data?limit=1000")
        mid = str(uuid.uuid4())
        status, _, doc = upload(self.a, [hr(70, metric_id=mid), hr(500), hr(70, metric_id=mid)],
                                client_timestamp="not a time")
        self.assertEqual(status, 422, doc)
        pointers = {e["pointer"] for e in doc["errors"]}
        self.assertTrue({"/client_timestamp", "/metrics/1/biometric_data/heart_rate", "/metrics/2/metric_id"} <= pointers,
                        doc)
        _, _, after = self.a.call("GET", "/api/v1/health-data?limit=1000")
        self.assertEqual(len(before["data"]), len(after["data"]))
        status, _, doc = upload(self.a, [])
        self.assertEqual(status, 422)

    def test_retried_upload_with_metric_ids_is_deduplicated(self):
        metrics = [hr(61, metric_id=str(uuid.uuid4())), hr(62, metric_id=str(uuid.uuid4()))]
        s1, _, d1 = upload(self.a, metrics)
        s2, _, d2 = upload(self.a, metrics)
        self.assertEqual((s1, s2), (201, 201))
        self.assertEqual(d1["samples_stored"], 2)
        self.assertEqual(d2["samples_stored"], 0)
        self.assertEqual(d2["duplicates_skipped"], 2)

    def test_idempotency_key(self):
        c = Client(self.srv)
        key = "retry-" + uuid.uuid4().hex
        body = {"user_id": c.user_id, "metrics": [hr(71), hr(72)], "upload_source": "apple_health",
                "client_timestamp": T0}
        s1, h1, d1 = c.call("POST", "/api/v1/health-data/upload", body, {"Idempotency-Key": key})
        s2, h2, d2 = c.call("POST", "/api/v1/health-data/upload", body, {"Idempotency-Key": key})
        self.assertEqual((s1, s2), (201, 201), (d1, d2))
        self.assertEqual(d1, d2)  # the very same reply, processing_id included
        self.assertEqual(h2.get("idempotent-replayed"), "true")
        self.assertNotIn("idempotent-replayed", h1)
        _, _, page = c.call("GET", "/api/v1/health-data?limit=1000")
        self.assertEqual(len(page["data"]), 2)  # stored once
        # The same key with another body is a conflict, and stores nothing.
        other = dict(body, metrics=[hr(99)])
        status, _, doc = c.call("POST", "/api/v1/health-data/upload", other, {"Idempotency-Key": key})
        self.assertEqual(status, 409, doc)
        _, _, page = c.call("GET", "/api/v1/health-data?limit=1000")
        self.assertEqual(len(page["data"]), 2)
        # Keys are per user: another user's identical key is independent.
        d = Client(self.srv)
        body_d = dict(body, user_id=d.user_id)
        status, _, doc = d.call("POST", "/api/v1/health-data/upload", body_d, {"Idempotency-Key": key})
        self.assertEqual(status, 201, doc)
        self.assertNotEqual(doc["processing_id"], d1["processing_id"])
        # HealthKit uploads honour it too.
        hk = {"user_id": c.user_id, "quantity_samples": [
            {"identifier": "HKQuantityTypeIdentifierStepCount", "value": 10, "unit": "count",
             "start_date": T0, "end_date": T0}]}
        k2 = "hk-" + uuid.uuid4().hex
        a = c.call("POST", "/api/v1/healthkit/upload", hk, {"Idempotency-Key": k2})
        b = c.call("POST", "/api/v1/healthkit/upload", hk, {"Idempotency-Key": k2})
        self.assertEqual((a[0], b[0]), (202, 202))
        self.assertEqual(a[2]["upload_id"], b[2]["upload_id"])
        status, _, doc = c.call("POST", "/api/v1/health-data/upload", body, {"Idempotency-Key": "bad key"})
        self.assertEqual(status, 400, doc)

    def test_pagination(self):
        c = Client(self.srv)
        metrics = [hr(60 + i, start_date="2026-11-2%dT0%d:00:00Z" % (1 + i // 5, i % 5),
                      end_date="2026-11-2%dT0%d:00:00Z" % (1 + i // 5, i % 5)) for i in range(12)]
        self.assertEqual(upload(c, metrics)[0], 201)
        seen, path = [], "/api/v1/health-data?limit=5&data_type=heart_rate"
        for _ in range(5):
            status, _, page = c.call("GET", path)
            self.assertEqual(status, 200, page)
            seen += page["data"]
            if not page["pagination"]["has_next"]:
                self.assertIsNone(page["links"]["next"])
                break
            self.assertEqual(page["pagination"]["page_size"], 5)
            path = page["links"]["next"]
        self.assertEqual(len(seen), 12)
        self.assertEqual(len({s["id"] for s in seen}), 12)
        starts = [s["start_date"] for s in seen]
        self.assertEqual(starts, sorted(starts, reverse=True))
        status, _, page = c.call("GET", "/api/v1/health-data?start_date=2026-11-22T00:00:00Z")
        self.assertEqual(len(page["data"]), 7)  # days 22 (5) and 23 (2)
        self.assertEqual(c.call("GET", "/api/v1/health-data?limit=0")[0], 422)
        self.assertEqual(c.call("GET", "/api/v1/health-data?cursor=garbage")[0], 422)
        self.assertEqual(c.call("GET", "/api/v1/health-data?start_date=monday")[0], 422)

    def test_export_ndjson_and_csv(self):
        c = Client(self.srv)
        n = 1200  # more than one internal page
        metrics = [hr(40 + i % 200, metric_id=str(uuid.uuid4())) for i in range(1000)]
        self.assertEqual(upload(c, metrics)[0], 201)
        more = [{"metric_type": "activity_level", "activity_data": {"steps": i}, "metric_id": str(uuid.uuid4())}
                for i in range(200)]
        self.assertEqual(upload(c, more)[0], 201)
        status, hdrs, body = c.raw("GET", "/api/v1/health-data/export")
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["content-type"], "application/x-ndjson")
        self.assertEqual(hdrs.get("transfer-encoding"), "chunked")
        lines = [json.loads(l) for l in body.decode().splitlines()]
        self.assertEqual(len(lines), n)
        status, hdrs, body = c.raw("GET", "/api/v1/health-data/export?data_type=steps", {"Accept": "text/csv"})
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/csv"))
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        self.assertEqual(len(rows), 200)
        self.assertEqual({r["metric_type"] for r in rows}, {"steps"})
        # Someone else's export holds none of it.
        status, _, body = self.b.raw("GET", "/api/v1/health-data/export")
        self.assertNotIn(c.user_id.encode(), body)

    def test_healthkit_upload_mapping_and_dedup(self):
        c = Client(self.srv)
        q = [
            {"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierHeartRate", "value": 64,
             "unit": "count/min", "start_date": "2026-11-20T07:00:00-05:00", "end_date": "2026-11-20T07:00:00-05:00",
             "source_name": "Apple Watch"},
            {"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierOxygenSaturation", "value": 0.96,
             "unit": "%", "start_date": "2026-11-20T07:01:00Z", "end_date": "2026-11-20T07:01:00Z"},
            {"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierBodyTemperature", "value": 98.6,
             "unit": "degF", "start_date": "2026-11-20T07:02:00Z", "end_date": "2026-11-20T07:02:00Z"},
            {"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierBloodGlucose", "value": 5.5,
             "unit": "mmol<180.1558800000541>/L", "start_date": "2026-11-20T07:03:00Z",
             "end_date": "2026-11-20T07:03:00Z"},
            {"identifier": "HKQuantityTypeIdentifierStepCount", "value": 120, "unit": "count",
             "start_date": "2026-11-20T07:00:00Z", "end_date": "2026-11-20T07:05:00Z"},
            {"identifier": "HKQuantityTypeIdentifierDietaryCaffeine", "value": 80, "unit": "mg",
             "start_date": "2026-11-20T07:00:00Z", "end_date": "2026-11-20T07:00:00Z"},
        ]
        cat = [{"uuid": str(uuid.uuid4()), "identifier": "HKCategoryTypeIdentifierSleepAnalysis", "value": 3,
                "start_date": "2026-11-20T01:00:00Z", "end_date": "2026-11-20T02:30:00Z"}]
        wk = [{"uuid": str(uuid.uuid4()), "activity_type": "HKWorkoutActivityTypeRunning",
               "start_date": "2026-11-20T17:00:00Z", "end_date": "2026-11-20T17:45:00Z",
               "total_energy_burned": 450, "total_distance": 7.2}]
        corr = [{"identifier": "HKCorrelationTypeIdentifierBloodPressure", "start_date": "2026-11-20T09:00:00Z",
                 "end_date": "2026-11-20T09:00:00Z", "objects": [
                     {"identifier": "HKQuantityTypeIdentifierBloodPressureSystolic", "value": 118, "unit": "mmHg",
                      "start_date": "2026-11-20T09:00:00Z", "end_date": "2026-11-20T09:00:00Z"},
                     {"identifier": "HKQuantityTypeIdentifierBloodPressureDiastolic", "value": 76, "unit": "mmHg",
                      "start_date": "2026-11-20T09:00:00Z", "end_date": "2026-11-20T09:00:00Z"}]}]
        body = {"user_id": c.user_id, "quantity_samples": q, "category_samples": cat, "workouts": wk,
                "correlation_samples": corr}
        status, hdrs, doc = c.call("POST", "/api/v1/healthkit/upload", body)
        self.assertEqual(status, 202, doc)
        self.assertEqual(doc["status"], "queued")
        self.assertEqual(doc["samples_received"]["total"], 9)
        self.assertEqual(doc["samples_stored"], 9)  # 5 mapped quantities + sleep + workout + 2 pressures
        self.assertEqual([u["identifier"] for u in doc["unsupported"]], ["HKQuantityTypeIdentifierDietaryCaffeine"])
        self.assertEqual(doc["unsupported"][0]["pointer"], "/quantity_samples/5")
        uid = doc["upload_id"]
        status, _, st = c.call("GET", "/api/v1/healthkit/status/" + uid)
        self.assertEqual(status, 200, st)
        self.assertEqual(st["upload_id"], uid)

        _, _, page = c.call("GET", "/api/v1/health-data?limit=100")
        by = {s["metric_type"]: s for s in page["data"]}
        self.assertAlmostEqual(by["blood_oxygen"]["value"], 96.0)
        self.assertEqual(by["blood_oxygen"]["unit"], "%")
        self.assertAlmostEqual(by["body_temperature"]["value"], 37.0)
        self.assertAlmostEqual(by["blood_glucose"]["value"], 5.5 * 18.01558800000541)
        self.assertEqual(by["sleep_stage"]["data"]["category"], "asleep_core")
        self.assertAlmostEqual(by["sleep_stage"]["value"], 90.0)
        self.assertEqual(by["heart_rate"]["data"]["tz_offset_min"], -300)
        self.assertEqual(by["heart_rate"]["start_date"], "2026-11-20T12:00:00Z")
        self.assertEqual(by["workout"]["data"]["activity_type"], "HKWorkoutActivityTypeRunning")

        # The same sync again changes nothing; an overlapping one stores only what is new.
        status, _, again = c.call("POST", "/api/v1/healthkit/upload", body)
        self.assertEqual(status, 202)
        self.assertEqual(again["samples_stored"], 0)
        self.assertEqual(again["duplicates_skipped"], 9)
        body2 = dict(body, quantity_samples=q[:2] + [
            {"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierHeartRate", "value": 70,
             "unit": "count/min", "start_date": "2026-11-20T08:00:00Z", "end_date": "2026-11-20T08:00:00Z"}],
                     category_samples=[], workouts=[], correlation_samples=[])
        status, _, third = c.call("POST", "/api/v1/healthkit/upload", body2)
        self.assertEqual((third["samples_stored"], third["duplicates_skipped"]), (1, 2))

        # Another user cannot read its status.
        self.assertEqual(self.b.call("GET", "/api/v1/healthkit/status/" + uid)[0], 404)

    def test_healthkit_bad_input_changes_nothing(self):
        c = Client(self.srv)
        bad = {"user_id": c.user_id, "quantity_samples": [
            {"identifier": "HKQuantityTypeIdentifierHeartRate", "value": 60, "unit": "count/min",
             "start_date": "2026-11-20T07:00:00Z", "end_date": "2026-11-20T07:00:00Z"},
            {"identifier": "HKQuantityTypeIdentifierHeartRate", "value": 60, "unit": "ms",
             "start_date": "2026-11-20T07:00:00Z", "end_date": "2026-11-20T07:00:00Z"},
            {"identifier": "HKQuantityTypeIdentifierStepCount", "value": 5, "unit": "count",
             "start_date": "2026-11-20T08:00:00Z", "end_date": "2026-11-20T07:00:00Z"},
            {"identifier": "HKQuantityTypeIdentifierStepCount", "value": "5", "unit": "count",
             "start_date": "2026-11-20T07:00:00Z", "end_date": "2026-11-20T07:00:00Z"}]}
        status, _, doc = c.call("POST", "/api/v1/healthkit/upload", bad)
        self.assertEqual(status, 422, doc)
        pointers = {e["pointer"] for e in doc["errors"]}
        self.assertTrue({"/quantity_samples/1/unit", "/quantity_samples/2/end_date",
                         "/quantity_samples/3/value"} <= pointers, doc)
        _, _, page = c.call("GET", "/api/v1/health-data")
        self.assertEqual(page["data"], [])
        status, _, doc = c.call("POST", "/api/v1/healthkit/upload", {"user_id": self.b.user_id,
                                                                     "quantity_samples": bad["quantity_samples"][:1]})
        self.assertEqual(status, 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
