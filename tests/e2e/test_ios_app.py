"""The iOS app against the real binary (shared/clients/ios-app.md): every call
its screens make, sent with the app's encoding (snake_case, dates as whole
seconds, Swift UUIDs upper-case, nil members omitted, never a query string)
and every reply decoded with the app's decoder rules (a required member
present, not null and of its JSON type; dates without fractional seconds).
Runs on SQLite and, when PostgreSQL 15 is installed, on PostgreSQL.

Sign-in: the backend's own login (the transitional build) on both
backends, and on SQLite also the Firebase-era build: a Firebase ID token
(RS256, verified against a JWKS file) as the bearer and the Firebase uid as
the user id in paths and bodies. Cognito tokens are the sign-in work's
tests (test_auth)."""
import datetime
import json
import os
import re
import signal
import subprocess
import time
import unittest
import uuid

import test_openapi as oa  # the documented schemas (docs/openapi.json)
from harness import Server

PASSWORD = "Correct-Horse-9"
LIMITS = {"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60,insights=1000/60"}
PG_INITDB = "/usr/lib/postgresql/15/bin/initdb"
SOURCE_DIR = os.environ.get("CLARITY_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")


# ---- the app's decoder ---------------------------------------------------------

class DecodeError(AssertionError):
    pass


def check(value, kind, where):
    """One value against a type of ios-app.md: "String", "Int", "Double",
    "Bool", "Date", "UUID", "Any", [kind], {member: kind} or ("map", kind)."""
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise DecodeError("%s: expected an array, got %r" % (where, value))
        for i, v in enumerate(value):
            check(v, kind[0], "%s/%d" % (where, i))
        return
    if isinstance(kind, dict):
        decode(value, kind, where)
        return
    if isinstance(kind, tuple):  # ("map", kind): [String: kind]
        if not isinstance(value, dict):
            raise DecodeError("%s: expected an object, got %r" % (where, value))
        for k, v in value.items():
            check(v, kind[1], "%s/%s" % (where, k))
        return
    ok = {
        "String": lambda v: isinstance(v, str),
        "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "Bool": lambda v: isinstance(v, bool),
        "Date": lambda v: isinstance(v, str) and DATE_RE.match(v) is not None,
        "UUID": lambda v: isinstance(v, str) and _is_uuid(v),
        "Any": lambda v: v is not None,
    }[kind](value)
    if not ok:
        raise DecodeError("%s: %r does not decode as %s" % (where, value, kind))


def _is_uuid(v):
    try:
        uuid.UUID(v)
        return len(v) == 36
    except ValueError:
        return False


def decode(doc, spec, where=""):
    """Decode doc with spec {name: kind}, "name?" optional. A missing or null
    required member fails, as it fails JSONDecoder."""
    if not isinstance(doc, dict):
        raise DecodeError("%s: expected an object, got %r" % (where or "/", doc))
    for name, kind in spec.items():
        optional = name.endswith("?")
        key = name.rstrip("?")
        v = doc.get(key)
        if v is None:
            if optional:
                continue
            raise DecodeError("%s/%s: required member missing or null" % (where, key))
        check(v, kind, "%s/%s" % (where, key))
    return doc


ERROR = {"type": "String", "title": "String", "detail": "String", "status": "Int", "instance?": "String"}
HK_UPLOAD = {"success": "Bool", "upload_id": "String", "processed_samples": "Int", "skipped_samples": "Int",
             "errors?": ["String"], "message?": "String"}
HK_STATUS = {"upload_id": "String", "status": "String", "progress": "Double", "processed_samples": "Int",
             "total_samples?": "Int", "errors?": ["String"], "completed_at?": "Date", "message?": "String"}
SYNC_START = {"success": "Bool", "sync_id": "String", "status": "String", "estimated_duration?": "Double",
              "message?": "String"}
SYNC_STATUS = {"sync_id": "String", "status": "String", "progress": "Double", "processed_samples": "Int",
               "total_samples?": "Int", "errors?": ["String"], "completed_at?": "Date"}
HISTORY = {"success": "Bool",
           "data": {"insights": [{"id": "String", "narrative": "String", "generated_at": "Date",
                                  "confidence_score": "Double", "key_insights_count": "Int",
                                  "recommendations_count": "Int"}],
                    "total_count": "Int", "has_more": "Bool", "pagination?": {"page": "Int", "limit": "Int"}},
           "metadata?": "Any"}
GENERATED = {"success": "Bool",
             "data": {"user_id": "String", "narrative": "String", "key_insights": ["String"],
                      "recommendations": ["String"], "confidence_score": "Double", "generated_at": "Date"},
             "metadata?": "Any"}
CHAT = {"response": "String", "conversation_id": "String", "follow_up_questions?": ["String"],
        "relevant_data?": "Any"}
UPLOAD = {"processing_id": "UUID", "status": "String", "accepted_metrics": "Int", "rejected_metrics": "Int",
          "validation_errors": ["String"], "estimated_processing_time?": "Int", "sync_token?": "String",
          "message": "String", "timestamp": "Date"}
PROCESSING = {"processing_id": "UUID", "status": "String", "progress": "Double", "processed_metrics": "Int",
              "total_metrics?": "Int", "estimated_time_remaining?": "Int", "completed_at?": "Date",
              "errors?": ["String"], "message?": "String"}
HEALTH_DATA = {"data": [{"metric_id": "UUID", "metric_type": "String", "biometric_data?": "Any",
                         "sleep_data?": "Any", "activity_data?": "Any", "device_id?": "String",
                         "metadata?": "Any", "created_at": "Date"}]}
PAT_STARTED = {"success": "Bool", "data?": "Any", "analysis_id": "String", "status": "String",
               "message?": "String", "estimated_completion_time?": "Int", "created_at": "Date"}
PAT_RESULT = {"id": "String", "status": "String", "pat_features?": ("map", "Double"), "analysis?": "Any",
              "error_message?": "String", "created_at": "Date", "completed_at?": "Date"}
SERVICE = {"success": "Bool",
           "data": {"service": "String", "status": "String",
                    "model_info": {"model_name": "String", "project_id": "String", "initialized": "Bool",
                                   "capabilities": ["String"]},
                    "timestamp": "Date", "uptime?": "Double", "version?": "String"}}


def no_fraction_anywhere(test, doc, path=""):
    """Every date-like string Clarity generated is whole seconds."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            no_fraction_anywhere(test, v, path + "/" + k)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            no_fraction_anywhere(test, v, "%s/%d" % (path, i))
    elif isinstance(doc, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+", doc):
        test.fail("%s: %s has fractional seconds" % (path, doc))


# ---- the app's encoder -----------------------------------------------------------

def app_date(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def swift_uuid():
    return str(uuid.uuid4()).upper()


class App:
    """The app's networking: JSON bodies with nil members omitted, bearer token."""

    def __init__(self, srv):
        self.srv = srv
        self.email = "ios-%s@example.com" % uuid.uuid4().hex[:10]
        # The transitional build's sign-up: {email, password, display_name?}.
        status, _, doc = self.call("POST", "/api/v1/auth/register",
                                   {"email": self.email, "password": PASSWORD, "display_name": "Ann Lee"},
                                   token=False)
        assert status == 201, doc
        for member, kind in (("access_token", str), ("refresh_token", str), ("token_type", str),
                             ("expires_in", int), ("scope", str)):
            assert isinstance(doc.get(member), kind), (member, doc)
        status, _, doc = self.call("POST", "/api/v1/auth/login",
                                   {"email": self.email, "password": PASSWORD, "remember_me": True,
                                    "device_info": {"device_model": "iPhone16,1", "system_name": "iOS",
                                                    "system_version": "18.5", "app_version": "1.4.0",
                                                    "time_zone": "Europe/Berlin"}}, token=False)
        assert status == 200, doc
        tokens = doc.get("tokens", doc)
        self.token = tokens["access_token"]
        status, _, me = self.call("GET", "/api/v1/auth/me")
        assert status == 200, me
        self.user_id = me["user_id"]
        self.other_form_of_id = self.user_id.upper()  # Swift writes UUIDs upper-case

    def call(self, method, path, body=None, token=True):
        assert "?" not in path, "the app never sends query strings"
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps({k: v for k, v in body.items() if v is not None})
        self.last = (method, path)
        return self.srv.json(method, path, data, headers)


def samples_of(end, days=7, source="Ann's Apple Watch"):
    """What the app's sync sends: the last `days` days of steps, heart rate,
    resting heart rate and sleep stages (category_value), no UUIDs."""
    rev = {"source": {"name": source, "bundle_identifier": "com.apple.health.ABCD"}, "version": "11.5",
           "product_type": "Watch7,1", "operating_system_version": "11.5.0"}
    out = []
    start = end - datetime.timedelta(days=days)
    for d in range(days):
        day = start + datetime.timedelta(days=d)
        for h in range(8, 22):
            t = day.replace(hour=h, minute=0, second=0)
            out.append({"sample_type": "stepCount", "value": float(300 + 10 * h), "unit": "count",
                        "start_date": app_date(t), "end_date": app_date(t + datetime.timedelta(minutes=30)),
                        "source_revision": rev})
            out.append({"sample_type": "heartRate", "value": 60.0 + h, "unit": "count/min",
                        "start_date": app_date(t), "end_date": app_date(t), "source_revision": rev})
        t = day.replace(hour=7, minute=0, second=0)
        out.append({"sample_type": "restingHeartRate", "value": 55.0, "unit": "count/min",
                    "start_date": app_date(t), "end_date": app_date(t), "source_revision": rev})
        night = day.replace(hour=23, minute=0, second=0)
        for k, (cv, mins) in enumerate([(0, 15), (3, 120), (4, 60), (5, 90), (2, 10), (3, 150)]):
            s = night + datetime.timedelta(minutes=sum(m for _, m in [(0, 15), (3, 120), (4, 60), (5, 90),
                                                                         (2, 10), (3, 150)][:k]))
            out.append({"sample_type": "sleepAnalysis", "value": float(mins), "category_value": cv, "unit": "min",
                        "start_date": app_date(s), "end_date": app_date(s + datetime.timedelta(minutes=mins)),
                        "metadata": {"sleep_stage": str(cv)}, "source_revision": rev})
    return out


def sync_body(app, samples):
    return {"user_id": app.user_id, "samples": samples,
            "device_info": {"device_model": "iPhone16,1", "system_name": "iOS", "system_version": "18.5",
                            "app_version": "1.4.0", "time_zone": "Europe/Berlin"},
            "timestamp": app_date(datetime.datetime.now(datetime.timezone.utc))}


def wait_for(fn, timeout=120):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.3)


def documented_schema(method, path, status):
    """The reply schema docs/openapi.json gives for this request."""
    # Literal segments win over parameters, as in the router.
    for template, ops in sorted(oa.DOC["paths"].items(), key=lambda kv: kv[0].count("{")):
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path) and method.lower() in ops:
            reply = oa.resolve(ops[method.lower()]["responses"].get(str(status)))
            return reply["content"]["application/json"]["schema"]
    raise AssertionError("%s %s is not documented" % (method, path))


class AppContract:
    """The replay; mixed into one TestCase per backend (self.srv)."""

    def make_app(self):
        return App(self.srv)

    def decode(self, reply, spec, status=200, app=None):
        code, _, doc = reply
        self.assertEqual(code, status, doc)
        no_fraction_anywhere(self, doc)
        try:
            decode(doc, spec)
        except DecodeError as e:
            self.fail("%s in %s" % (e, json.dumps(doc)[:2000]))
        if app is not None and status < 300:
            # The reply is also exactly what the API documents.
            errors = list(oa.validator_for(documented_schema(*app.last, status)).iter_errors(doc))
            self.assertEqual([], ["%s at %s" % (e.message, "/".join(map(str, e.absolute_path))) for e in errors],
                             "%s %s" % app.last)
        return doc

    def test_new_user_dashboard_and_status_screens(self):
        app = self.make_app()
        # Dashboard of a new user: an empty history decodes.
        hist = self.decode(app.call("GET", "/api/v1/insights/history/" + app.user_id), HISTORY, app=app)
        self.assertEqual(hist["data"]["insights"], [])
        self.assertEqual(hist["data"]["total_count"], 0)
        self.assertFalse(hist["data"]["has_more"])
        # The same with the user id upper-cased: still the caller's own (empty) history.
        hist = self.decode(app.call("GET", "/api/v1/insights/history/" + app.other_form_of_id), HISTORY, app=app)
        for path in ("/api/v1/pat/models", "/api/v1/pat/health", "/api/v1/insights/status",
                     "/api/v1/insights/alerts"):
            self.decode(app.call("GET", path), SERVICE, app=app)
        # A sync before any upload names no upload.
        st = self.decode(app.call("POST", "/api/v1/healthkit/sync",
                                  {"user_id": app.user_id, "start_date": "2025-06-17T00:00:00Z",
                                   "end_date": "2025-06-24T00:00:00Z", "data_types": ["stepCount"],
                                   "force_refresh": False}), SYNC_START, app=app)
        self.decode(app.call("GET", "/api/v1/healthkit/sync/" + st["sync_id"]), SYNC_STATUS, app=app)
        # A sync with nothing new in HealthKit: a valid sync that stores nothing.
        empty = self.decode(app.call("POST", "/api/v1/healthkit", sync_body(app, [])), HK_UPLOAD, 202, app=app)
        self.assertEqual((empty["processed_samples"], empty["skipped_samples"]), (0, 0))
        # Errors decode as the app's error object.
        self.decode(app.call("GET", "/api/v1/healthkit/status/" + swift_uuid()), ERROR, 404, app=app)
        self.decode(app.call("POST", "/api/v1/healthkit", {"user_id": app.user_id, "samples": [{"sample_type":
                    "heartRate", "value": 1e308, "unit": "count/min", "start_date": "2025-06-24T10:00:00Z",
                    "end_date": "2025-06-24T10:00:00Z"}], "timestamp": "2025-06-24T10:00:00Z"}), ERROR, 422, app=app)

    def test_sync_twice_then_dashboard_and_chat(self):
        app = self.make_app()
        end = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        samples = samples_of(end)
        first = self.decode(app.call("POST", "/api/v1/healthkit", sync_body(app, samples)), HK_UPLOAD, 202, app=app)
        self.assertTrue(first["success"])
        self.assertEqual(first["processed_samples"], len(samples))
        self.assertEqual(first["skipped_samples"], 0)
        # The app re-sends the same window: nothing new is stored, and it says so.
        second = self.decode(app.call("POST", "/api/v1/healthkit", sync_body(app, samples)), HK_UPLOAD, 202, app=app)
        self.assertEqual(second["processed_samples"], 0)
        self.assertEqual(second["skipped_samples"], len(samples))
        # An overlapping window with one new day stores only that day.
        later = samples_of(end + datetime.timedelta(days=1))
        new_day = [s for s in later if s not in samples]
        third = self.decode(app.call("POST", "/api/v1/healthkit", sync_body(app, later)), HK_UPLOAD, 202, app=app)
        self.assertEqual(third["processed_samples"], len(new_day))
        self.assertEqual(third["skipped_samples"], len(later) - len(new_day))

        # Status by both builds' paths, the id upper-case as Swift writes UUIDs.
        up = first["upload_id"].upper()
        done = wait_for(lambda: app.call("GET", "/api/v1/healthkit/status/" + up)[2]["status"]
                        in ("completed", "failed"))
        self.assertTrue(done)
        st = self.decode(app.call("GET", "/api/v1/healthkit/status/" + up), HK_STATUS, app=app)
        self.assertEqual(st["status"], "completed", st)
        self.assertIn("completed_at", st)
        self.decode(app.call("GET", "/api/v1/health-data/upload/%s/status" % up), HK_STATUS, app=app)
        sync = self.decode(app.call("POST", "/api/v1/healthkit/sync",
                                    {"user_id": app.other_form_of_id, "start_date": app_date(end),
                                     "end_date": app_date(end), "data_types": ["stepCount", "heartRate"],
                                     "force_refresh": True}), SYNC_START, app=app)
        self.decode(app.call("GET", "/api/v1/healthkit/sync/" + sync["sync_id"].upper()), SYNC_STATUS, app=app)

        # The stored samples: each once, with the canonical types.
        code, _, page = app.call("GET", "/api/v1/health-data")
        self.decode((code, None, page), HEALTH_DATA)
        types = {m["metric_type"] for m in page["data"]}
        self.assertTrue(types <= {"steps", "heart_rate", "resting_heart_rate", "sleep_stage"}, types)

        # The dashboard: the analysis of the sync produced an insight.
        hist = wait_for(lambda: self.decode(app.call("GET", "/api/v1/insights/history/" + app.user_id),
                                            HISTORY, app=app)["data"]["insights"])
        self.assertTrue(hist, "no insight after the sync")
        self.assertGreaterEqual(hist[0]["key_insights_count"], 1)
        one = self.decode(app.call("GET", "/api/v1/insights/" + hist[0]["id"].upper()), GENERATED, app=app)
        self.assertEqual(len(one["data"]["key_insights"]), hist[0]["key_insights_count"])
        self.assertIn("insight_details", one["data"])  # the richer detail is kept

        # Chat tab, both builds' paths: an answer from the user's analyses.
        for path in ("/api/v1/insights", "/api/v1/insights/generate"):
            gen = self.decode(app.call("POST", path, {
                "analysis_results": {"conversation_type": "chat", "message": "How did I sleep this week?"},
                "context": "chat", "insight_type": "chat_response", "include_recommendations": True,
                "language": "en"}), GENERATED, app=app)
            self.assertTrue(gen["data"]["narrative"])
        self.decode(app.call("POST", "/api/v1/insights/chat",
                             {"message": "How active was I?", "context": {"focus_timeframe": "week"}}), CHAT, app=app)
        # Insight generation from posted results.
        gen = self.decode(app.call("POST", "/api/v1/insights", {
            "analysis_results": {"sleep": {"total_sleep_minutes": 420}}, "insight_type": "sleep",
            "include_recommendations": True, "language": "en"}), GENERATED, app=app)
        self.assertTrue(all(isinstance(k, str) for k in gen["data"]["key_insights"]))

    def test_sync_and_import_of_the_same_samples_count_once(self):
        """The app's sync and an Apple Health export of the same samples
        derive the same content keys: whichever comes second stores nothing."""
        app = self.make_app()
        end = datetime.datetime(2025, 6, 24, tzinfo=datetime.timezone.utc)
        samples = samples_of(end, days=2)

        def export_time(text):
            t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
            # the export writes local time with the offset
            return t.astimezone(datetime.timezone(datetime.timedelta(hours=2))).strftime("%Y-%m-%d %H:%M:%S %z")
        hk = {"stepCount": "HKQuantityTypeIdentifierStepCount", "heartRate": "HKQuantityTypeIdentifierHeartRate",
              "restingHeartRate": "HKQuantityTypeIdentifierRestingHeartRate"}
        names = ["InBed", "AsleepUnspecified", "Awake", "AsleepCore", "AsleepDeep", "AsleepREM"]
        rows = []
        for s in samples:
            src = s["source_revision"]["source"]["name"].replace("'", "&apos;")
            when = 'startDate="%s" endDate="%s"' % (export_time(s["start_date"]), export_time(s["end_date"]))
            if s["sample_type"] == "sleepAnalysis":
                rows.append('<Record type="HKCategoryTypeIdentifierSleepAnalysis" sourceName="%s" %s '
                            'value="HKCategoryValueSleepAnalysis%s"/>' % (src, when, names[s["category_value"]]))
            else:
                rows.append('<Record type="%s" sourceName="%s" unit="%s" %s value="%s"/>'
                            % (hk[s["sample_type"]], src, s["unit"], when, ("%f" % s["value"]).rstrip("0").rstrip(".")))
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n'
               '<ExportDate value="2025-06-24 10:00:00 +0000"/>\n' + "\n".join(rows) + "\n</HealthData>\n")
        code, _, doc = self.srv.json("POST", "/api/v1/healthkit/import", xml.encode(),
                                     {"Authorization": "Bearer " + app.token, "Content-Type": "application/xml"})
        self.assertEqual(code, 202, doc)
        self.assertEqual(doc["import"]["stored"], len(samples), doc)
        sync = self.decode(app.call("POST", "/api/v1/healthkit", sync_body(app, samples)), HK_UPLOAD, 202, app=app)
        self.assertEqual(sync["processed_samples"], 0, sync)
        self.assertEqual(sync["skipped_samples"], len(samples))

    def test_upload_processing_and_pat(self):
        app = self.make_app()
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        metric_id = swift_uuid()
        body = {"user_id": app.other_form_of_id, "upload_source": "ios_app", "client_timestamp": app_date(now),
                "sync_token": "tok-1",
                "metrics": [{"metric_id": metric_id, "metric_type": "heart_rate",
                             "biometric_data": {"heart_rate": 72}, "device_id": "iPhone16,1",
                             "created_at": app_date(now), "raw_data": {"x": 1}, "metadata": {"k": "v"},
                             "start_date": app_date(now), "end_date": app_date(now)}]}
        up = self.decode(app.call("POST", "/api/v1/health-data/upload", body), UPLOAD, 201, app=app)
        self.assertEqual(up["accepted_metrics"], 1)
        self.decode(app.call("GET", "/api/v1/health-data/processing/" + up["processing_id"].upper()), PROCESSING, app=app)
        code, _, page = app.call("GET", "/api/v1/health-data")
        self.decode((code, None, page), HEALTH_DATA)
        self.assertIn(metric_id.lower(), [m["metric_id"].lower() for m in page["data"]])

        start = now.replace(hour=0, minute=0, second=0) - datetime.timedelta(days=1)
        steps = [{"timestamp": app_date(start + datetime.timedelta(minutes=i)), "step_count": (i * 7) % 90,
                  "source": "iPhone"} for i in range(0, 1440)]
        acts = [{"timestamp": app_date(start + datetime.timedelta(minutes=i)), "activity_level": float((i * 7) % 90),
                 "heart_rate": 60.0} for i in range(0, 1440)]
        rng = {"start_date": app_date(start), "end_date": app_date(start + datetime.timedelta(days=1))}
        ids = []
        for path, payload in (("/api/v1/pat/analysis", {"step_data": steps}),
                              ("/api/v1/pat/analyze-step-data", {"step_data": steps}),
                              ("/api/v1/pat/analyze", {"actigraphy_data": acts})):
            req = dict(payload, user_id=app.user_id, analysis_type="comprehensive", time_range=rng)
            r = self.decode(app.call("POST", path, req), PAT_STARTED, app=app)
            self.assertTrue(r["success"])
            ids.append(r["analysis_id"])
        for i in ids:
            for path in ("/api/v1/pat/results/", "/api/v1/pat/analysis/"):
                r = self.decode(app.call("GET", path + i.upper()), PAT_RESULT, app=app)
                self.assertEqual(r["status"], "completed")

    def test_rules_for_clients_in_the_field(self):
        app = self.make_app()
        other = self.make_app()
        # Unknown members are ignored; a wholly unknown or empty body is refused.
        code, _, doc = app.call("POST", "/api/v1/healthkit", {"nonsense": 1})
        self.assertEqual(code, 422, doc)
        code, _, doc = app.call("POST", "/api/v1/healthkit", {})
        self.assertEqual(code, 422, doc)
        # Known members are still validated exactly.
        code, _, doc = app.call("POST", "/api/v1/healthkit", {"user_id": app.user_id, "samples": "x",
                                                              "timestamp": "2025-06-24T10:00:00Z"})
        self.assertEqual(code, 422, doc)
        # #16.7: an unknown member and another user's user_id: a 403, not a 500.
        for path, body in (("/api/v1/health-data/upload", {"user_id": other.user_id, "favourite": 1,
                                                           "metrics": "bad"}),
                           ("/api/v1/healthkit/upload", {"user_id": other.user_id, "favourite": 1}),
                           ("/api/v1/healthkit", {"user_id": other.user_id, "favourite": 1, "samples": []})):
            code, _, doc = app.call("POST", path, body)
            self.assertEqual(code, 403, (path, doc))


class FirebaseApp(App):
    """The Firebase-era build: a Firebase ID token (RS256) as the bearer, the
    Firebase uid (28 characters, not a UUID) as the user id in paths and
    bodies."""

    def __init__(self, srv, idp):
        self.srv = srv
        self.uid = uuid.uuid4().hex[:28]
        now = int(time.time())
        self.token = idp.rs256({"iss": "https://securetoken.google.com/clarity-ios", "aud": "clarity-ios",
                                "sub": self.uid, "email": "fb-%s@example.com" % self.uid[:8], "email_verified": True,
                                "iat": now, "exp": now + 3600, "auth_time": now - 5})
        self.user_id = self.uid
        self.other_form_of_id = self.uid  # a provider's subject is exact


class FirebaseIdp:
    """An RSA key and its JWKS file, signing Firebase-style ID tokens."""

    def __init__(self):
        import tempfile
        from tokens import b64url
        self.b64url = b64url
        self.dir = tempfile.mkdtemp()
        self.key = os.path.join(self.dir, "rsa.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        self.key], check=True, capture_output=True)
        mod = subprocess.run(["openssl", "rsa", "-in", self.key, "-noout", "-modulus"], check=True,
                             capture_output=True).stdout.decode().strip().split("=", 1)[1]
        jwks = {"keys": [{"kty": "RSA", "kid": "fb-1", "use": "sig", "alg": "RS256",
                          "n": b64url(bytes.fromhex(mod)), "e": b64url((65537).to_bytes(3, "big"))}]}
        self.jwks = os.path.join(self.dir, "jwks.json")
        with open(self.jwks, "w") as f:
            json.dump(jwks, f)

    def rs256(self, claims):
        h = self.b64url(json.dumps({"alg": "RS256", "kid": "fb-1", "typ": "JWT"}).encode())
        p = self.b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=(h + "." + p).encode(),
                             check=True, capture_output=True).stdout
        return h + "." + p + "." + self.b64url(sig)

    def close(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


class SQLiteFirebase(AppContract, unittest.TestCase):
    """The same replay with the Firebase-era build's tokens and user ids."""

    @classmethod
    def setUpClass(cls):
        cls.idp = FirebaseIdp()
        cls.srv = Server(env=dict(LIMITS, FIREBASE_PROJECT_ID="clarity-ios", OIDC_JWKS_FILE=cls.idp.jwks))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.idp.close()

    def make_app(self):
        return FirebaseApp(self.srv, self.idp)


class SQLite(AppContract, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env=dict(LIMITS))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()


@unittest.skipUnless(os.path.exists(PG_INITDB), "PostgreSQL 15 is not installed")
class PostgreSQL(AppContract, unittest.TestCase):
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
