"""The attack corpus (issue 16), bounded and on loopback: malformed and
mutated requests against every route the real binary serves, with good,
missing, forged and other users' tokens, and other users' ids in paths and
bodies. A client's mistake must never get a 5xx, nothing may hang, and no
reply may carry another user's data.

Routes come from `clarity routes` and request bodies from the served
/openapi.json, so new routes are attacked without editing this file.
ATTACK_REQUESTS sets the number of requests (default 3,000 in the suite;
`ATTACK_REQUESTS=20000 python3 tests/e2e/test_attack.py` for a long run).
ATTACK_SEED makes a run reproducible; a failure prints the seed and the
requests that failed.
"""
import http.client
import json
import os
import random
import subprocess
import time
import unittest
import uuid

from harness import BIN, Server

N_REQUESTS = int(os.environ.get("ATTACK_REQUESTS", "3000"))
SEED = int(os.environ.get("ATTACK_SEED", str(int(time.time()))))
PASSWORD = "Attack-Pass-1!"
# Marker values only the victim's data contains: finding one in the
# attacker's replies is a cross-user leak.
VICTIM_SOURCE = "victim-src-7d1c"

# A 503 that says the server lacks a configured model, or (on a machine
# without scripts/install-deps' npm step) Swagger UI's files, is its state in
# this set-up, the same for every caller.
NOT_CONFIGURED = (b"not configured", b"no model", b"No PAT model", b"is not installed")


def register(srv, email):
    body = {"email": email, "password": PASSWORD, "first_name": "A", "last_name": "B",
            "terms_accepted": True, "privacy_policy_accepted": True}
    srv.request("POST", "/api/v1/auth/register", body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"})
    status, _, data = srv.request("POST", "/api/v1/auth/login",
                                  body=json.dumps({"email": email, "password": PASSWORD}).encode(),
                                  headers={"Content-Type": "application/json"})
    assert status == 200, data
    doc = json.loads(data)
    token = doc.get("access_token") or doc["tokens"]["access_token"]
    status, _, data = srv.request("GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " + token})
    me = json.loads(data)
    user_id = me.get("user_id") or me.get("id") or (me.get("user") or {}).get("id")
    return token, user_id


def sample_upload(user_id):
    t0 = 1764547200  # 2025-12-01T00:00:00Z
    metrics = []
    for i in range(5):
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 60 * i))
        metrics.append({"metric_type": "heart_rate", "biometric_data": {"heart_rate": 60 + i},
                        "start_date": ts, "end_date": ts, "device_id": VICTIM_SOURCE})
    return {"user_id": user_id, "metrics": metrics, "upload_source": VICTIM_SOURCE,
            "client_timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))}


def schema_example(schema, spec, depth=0):
    """A plausible instance of a JSON schema (enough to get past parsing)."""
    if depth > 6 or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return schema_example(spec.get("components", {}).get("schemas", {}).get(ref, {}), spec, depth + 1)
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema and schema[key]:
            return schema_example(schema[key][0], spec, depth + 1)
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or "properties" in schema:
        return {k: schema_example(v, spec, depth + 1) for k, v in schema.get("properties", {}).items()}
    if t == "array":
        return [schema_example(schema.get("items", {}), spec, depth + 1)]
    if t == "integer":
        return schema.get("minimum", 1)
    if t == "number":
        return schema.get("minimum", 1.5)
    if t == "boolean":
        return True
    if t == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2025-12-01T08:00:00Z"
        if fmt == "uuid":
            return str(uuid.uuid4())
        if fmt == "email":
            return "someone@example.com"
        return "x" * max(1, schema.get("minLength", 1))
    return None


WEIRD_VALUES = [None, True, 0, -1, 1e308, -1e308, 2 ** 63, -2 ** 63 - 1, 1.5, "", "x" * 70000,
                "\u00e9\u00e9\u00e9" * 5000, "\ud83d\ude00" * 100, "\u0000", "=cmd|' /C calc'!A0",
                "\tTAB", "../../etc/passwd", "' OR 1=1 --", [], {}, [[[[[]]]]], {"a": {"b": {"c": {}}}},
                "2025-13-45T99:99:99Z", "NaN", "Infinity", "-0", "00000000-0000-0000-0000-000000000000"]


def bounded_factor(value, factor, limit=11 << 20):
    """factor, lowered so that repeating value stays under ~limit bytes."""
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        return 1
    return max(0, min(factor, limit // max(size, 1)))


def mutate(value, rng, other_user):
    """One random mutation of a JSON value (returns bytes or a value)."""
    kind = rng.randrange(12)
    if kind == 0:
        return b""
    if kind == 1:
        return rng.choice([b"{", b"[", b"{\"a\":", b"\xff\xfe", b"null", b"1e999999", b"{\"a\":1,\"a\":2}",
                           b"[" * 5000 + b"]" * 5000, b"\"" + b"A" * 100000 + b"\"", b"{\"x\":\"\\ud800\"}"])
    if kind == 2:
        return rng.choice(WEIRD_VALUES)
    if isinstance(value, dict) and value:
        v = dict(value)
        key = rng.choice(list(v))
        if kind == 3:
            del v[key]
        elif kind == 4:
            v[key] = rng.choice(WEIRD_VALUES)
        elif kind == 5:
            v["unknown_member_%d" % rng.randrange(100)] = rng.choice(WEIRD_VALUES)
        elif kind == 6:
            v["user_id"] = other_user
        elif kind == 7:
            v[key] = mutate(v[key], rng, other_user) if not isinstance(v[key], bytes) else v[key]
            if isinstance(v[key], bytes):
                v[key] = "bytes"
        elif kind == 8:
            v = {key: v[key]}
        else:
            v[key] = [v[key]] * bounded_factor(v[key], rng.choice([2, 1000, 20000]))
        return v
    if isinstance(value, list) and value:
        if kind < 7:
            return value * bounded_factor(value, rng.choice([0, 2, 5000]))
        inner = mutate(value[0], rng, other_user)
        return [inner if not isinstance(inner, bytes) else "bytes"]
    return rng.choice(WEIRD_VALUES)


class Attack(unittest.TestCase):
    def test_attack_corpus(self):
        srv = Server(env={"RATE_LIMITS": "auth=100000/60,api=1000000/60,upload=1000000/60,"
                                          "insights=1000000/60,chat=1000000/60",
                          "LOCKOUT_THRESHOLD": "1000"})
        try:
            self.run_corpus(srv)
        finally:
            srv.stop()

    def run_corpus(self, srv):
        rng = random.Random(SEED)
        attacker, attacker_id = register(srv, "mallory@example.com")
        victim, victim_id = register(srv, "victim@example.com")
        st, _, data = srv.request("POST", "/api/v1/health-data/upload",
                                  body=json.dumps(sample_upload(victim_id)).encode(),
                                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + victim})
        self.assertLess(st, 300, data)
        victim_upload = json.loads(data).get("processing_id", str(uuid.uuid4()))

        routes = json.loads(subprocess.run([BIN, "routes"], capture_output=True, check=True).stdout)
        st, _, data = srv.request("GET", "/openapi.json")
        spec = json.loads(data) if st == 200 else {"paths": {}}
        ids = [victim_id, victim_id.upper(), victim_upload, victim_upload.upper(), attacker_id, "1",
               "x" * 300, "%00", "..", "\u00e9", str(uuid.uuid4()), "-1", "null"]
        tokens = [attacker] * 12 + ["", "garbage", "Bearer", attacker[:-4] + "AAAA",
                  "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", victim]
        # Logging out and erasing end the attacker's (or victim's) session
        # for the rest of the run: they are attacked last, on their own.
        session_enders = [r for r in routes if (r["method"], r["path"]) in
                          (("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/auth/me"))]
        targets = [r for r in routes if r["path"] not in ("/docs/{asset}",) and r not in session_enders]

        failures, hangs, leaks, sent = [], [], [], 0
        statuses = {}
        conn = srv.conn(timeout=15)
        t_start = time.monotonic()
        while sent < N_REQUESTS:
            r = rng.choice(targets)
            path = r["path"]
            while "{" in path:
                a, _, rest = path.partition("{")
                _, _, rest = rest.partition("}")
                path = a + rng.choice(ids) + rest
            path = "/".join(p if p.isascii() else "%C3%A9" for p in path.split("/"))
            op = spec.get("paths", {}).get(r["path"], {}).get(r["method"].lower(), {})
            schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"))
            body = None
            if r["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                base = schema_example(schema, spec) if schema else {"user_id": attacker_id}
                m = base
                for _ in range(rng.choice([0, 1, 1, 2, 3])):  # composed mutations
                    if isinstance(m, bytes):
                        break
                    m = mutate(m, rng, victim_id)
                body = m if isinstance(m, bytes) else json.dumps(m).encode("utf-8", "surrogatepass")
                if len(body) > (12 << 20):  # past every limit: a 413 costs time, not coverage
                    body = body[: 12 << 20]
            tok = rng.choice(tokens)
            headers = {"Content-Type": rng.choice(["application/json"] * 4 + ["text/plain", "application/json; charset=latin1"])}
            if tok:
                headers["Authorization"] = "Bearer " + tok
            if r["path"].startswith("/api/v1/chat"):
                continue  # WebSocket handshakes have their own abuse tests (test_chat)
            sent += 1
            t0 = time.monotonic()
            try:
                conn.request(r["method"], path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                took = time.monotonic() - t0
                if took >= 14:
                    hangs.append((r["method"], path, repr(e)))
                conn.close()
                conn = srv.conn(timeout=15)
                continue
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = srv.conn(timeout=15)
            if resp.status >= 500:
                if resp.status == 503 and any(m in data for m in NOT_CONFIGURED):
                    continue
                failures.append((resp.status, r["method"], path, (body or b"")[:200], data[:300]))
            elif tok == attacker and resp.status < 300 and VICTIM_SOURCE.encode() in data:
                leaks.append((r["method"], path, data[:300]))
        for r in session_enders:
            for body in (b"", b"{", b"[]", json.dumps({"user_id": victim_id}).encode(), b"\xff" * 10):
                st, _, data = srv.request(r["method"], r["path"], body=body,
                                          headers={"Authorization": "Bearer " + attacker,
                                                   "Content-Type": "application/json"})
                statuses[st] = statuses.get(st, 0) + 1
                sent += 1
                if st >= 500:
                    failures.append((st, r["method"], r["path"], body, data[:300]))
        # The victim's data survived the attacker's logout and erasure.
        st, _, data = srv.request("GET", "/api/v1/health-data", headers={"Authorization": "Bearer " + victim})
        self.assertEqual(st, 200, data)
        elapsed = time.monotonic() - t_start
        conn.close()
        print("attack corpus: %d requests in %.1f s, seed %d: %d x 5xx, %d hangs, %d leaks; statuses %s"
              % (sent, elapsed, SEED, len(failures), len(hangs), len(leaks), dict(sorted(statuses.items()))))
        st, _, _ = srv.request("GET", "/liveness")
        self.assertEqual(st, 200, "the server stopped answering")
        self.assertFalse(leaks, "another user's data in replies (seed %d): %r" % (SEED, leaks[:5]))
        self.assertFalse(hangs, "requests without an answer (seed %d): %r" % (SEED, hangs[:5]))
        self.assertFalse(failures, "5xx for a client's request (seed %d): %r" % (SEED, failures[:8]))


if __name__ == "__main__":
    unittest.main()
