"""End-to-end tests of `clarity smoke`: the real binary against the real
`clarity serve`, against a port nobody listens on, and against small fake
servers that get one thing wrong each (the smoke test must notice)."""
import http.server
import json
import re
import socket
import threading
import unittest
import uuid

from harness import Server, run_cli

PROBES = ["liveness", "readiness", "health", "security_headers"]
GOOD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'",
}


def smoke(*args, env=None):
    rc, out, err = run_cli(["smoke"] + list(args), env=env, timeout=120)
    report = None
    if out.strip():
        report = json.loads(out)
    return rc, report, err


def free_port():
    """A loopback port that was free a moment ago and has no listener."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Fake:
    """A loopback HTTP server whose answers a test sets: {path: (status,
    body dict, extra headers)}; unknown paths get 404."""

    def __init__(self, routes, headers=None, echo_request_id=True):
        routes = dict(routes)
        base_headers = GOOD_HEADERS if headers is None else headers

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                status, body, extra = routes.get(self.path, (404, {"detail": "nope"}, {}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in base_headers.items():
                    self.send_header(k, v)
                for k, v in extra.items():
                    self.send_header(k, v)
                rid = self.headers.get("X-Request-ID")
                if echo_request_id and rid:
                    self.send_header("X-Request-ID", rid)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def healthy_routes(health_checks=None):
    checks = {"database": {"status": "healthy", "latency_ms": 1}} if health_checks is None else health_checks
    status = "healthy" if all(c["status"] == "healthy" for c in checks.values()) else "unhealthy"
    return {
        "/liveness": (200, {"status": "alive"}, {}),
        "/readiness": (200, {"status": "ready"}, {}),
        "/health": (200 if status == "healthy" else 503, {"status": status, "checks": checks}, {}),
    }


class SmokeAgainstRealServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Several tests register accounts from one address.
        cls.srv = Server(env={"RATE_LIMITS": "auth=1000/60"})
        cls.url = "http://127.0.0.1:%d" % cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def assertConsistent(self, rc, report):
        """passed, the exit status and the checks agree; nothing is faked."""
        oks = [c["ok"] for c in report["checks"]]
        self.assertEqual(report["passed"], all(oks))
        self.assertEqual(rc, 0 if all(oks) else 1)
        for c in report["checks"]:
            self.assertEqual(set(c), {"name", "ok", "detail", "ms"})
            self.assertIsInstance(c["ms"], (int, float))
            self.assertTrue(c["detail"])

    def test_read_only_passes(self):
        rc, report, err = smoke("--url", self.url, "--read-only")
        self.assertEqual(rc, 0, (report, err))
        self.assertTrue(report["passed"])
        self.assertEqual(report["url"], self.url)
        self.assertEqual(report["mode"], "read-only")
        self.assertEqual([c["name"] for c in report["checks"]], PROBES)
        self.assertTrue(all(c["ok"] for c in report["checks"]), report)
        self.assertEqual([s["name"] for s in report["skipped"]], ["auth_round_trip"])
        self.assertConsistent(rc, report)

    def test_trailing_slash_is_the_same_server(self):
        rc, report, _ = smoke("--url", self.url + "/", "--read-only")
        self.assertEqual(rc, 0)
        self.assertEqual(report["url"], self.url)

    def test_register_never_pretends(self):
        # Whether or not this build has the auth API, the report must agree
        # with the exit status, and a missing route must be reported as a
        # failure that says so.
        rc, report, _ = smoke("--url", self.url, "--register")
        names = [c["name"] for c in report["checks"]]
        self.assertIn("auth_round_trip", names)
        auth = report["checks"][names.index("auth_round_trip")]
        if not auth["ok"]:
            self.assertEqual(rc, 1)
            self.assertFalse(report["passed"])
            for later in ("healthkit_upload", "insight"):
                row = report["checks"][names.index(later)]
                self.assertFalse(row["ok"])
                self.assertIn("not run", row["detail"])
        if "404" in auth["detail"]:
            self.assertIn("does not implement", auth["detail"])
        self.assertConsistent(rc, report)

    def has_auth_api(self):
        status, _, _ = self.srv.request("POST", "/api/v1/auth/register", body=b"{}",
                                        headers={"Content-Type": "application/json"})
        return status != 404

    def login(self):
        email = "smoke-e2e-%s@example.com" % uuid.uuid4().hex[:12]
        password = "Sm0ke!e2e-" + uuid.uuid4().hex[:8]
        hdrs = {"Content-Type": "application/json"}
        status, _, _ = self.srv.json("POST", "/api/v1/auth/register", json.dumps({
            "email": email, "password": password, "first_name": "Smoke", "last_name": "Test",
            "terms_accepted": True, "privacy_policy_accepted": True}).encode(), hdrs)
        self.assertEqual(status, 201)
        status, _, doc = self.srv.json("POST", "/api/v1/auth/login", json.dumps({
            "email": email, "password": password}).encode(), hdrs)
        self.assertEqual(status, 200)
        return doc["tokens"]["access_token"]

    def test_register_full_flow_passes(self):
        if not self.has_auth_api():
            self.skipTest("this build has no auth API")
        rc, report, err = smoke("--url", self.url, "--register", "--wait", "120")
        self.assertEqual(rc, 0, (report, err))
        self.assertEqual([c["name"] for c in report["checks"]],
                         PROBES + ["auth_round_trip", "healthkit_upload", "insight", "cleanup"])
        self.assertTrue(all(c["ok"] for c in report["checks"]), report)
        self.assertEqual(report["skipped"], [])
        self.assertIn("DELETE /api/v1/auth/me", report["checks"][-1]["detail"])

    def test_token_full_flow_cleans_up_the_upload(self):
        if not self.has_auth_api():
            self.skipTest("this build has no auth API")
        token = self.login()
        rc, report, err = smoke("--url", self.url, "--token", token, "--wait", "120")
        self.assertEqual(rc, 0, (report, err))
        rows = {c["name"]: c for c in report["checks"]}
        upload_id = re.search(r"upload ([0-9a-f-]{36}) completed", rows["healthkit_upload"]["detail"]).group(1)
        self.assertTrue(rows["cleanup"]["ok"])
        status, _, _ = self.srv.request("GET", "/api/v1/healthkit/status/" + upload_id,
                                        headers={"Authorization": "Bearer " + token})
        self.assertEqual(status, 404)  # the smoke test's data is gone
        # Read-only with the same token, from the environment this time:
        # probes and auth only, nothing written.
        rc, report, _ = smoke("--url", self.url, "--read-only", env={"SMOKE_TOKEN": token})
        self.assertEqual(rc, 0, report)
        self.assertEqual([c["name"] for c in report["checks"]], PROBES + ["auth_round_trip"])
        self.assertEqual({s["name"] for s in report["skipped"]}, {"healthkit_upload", "insight", "cleanup"})

    def test_register_ignores_smoke_token(self):
        # --register is explicit; a token in the environment does not clash.
        rc, _, err = run_cli(["smoke", "--url", "http://127.0.0.1:1", "--register", "--timeout", "1"],
                             env={"SMOKE_TOKEN": "t"})
        self.assertEqual(rc, 1, err)

    def test_token_read_only_never_pretends(self):
        rc, report, _ = smoke("--url", self.url, "--token", "not-a-real-token", "--read-only")
        names = [c["name"] for c in report["checks"]]
        auth = report["checks"][names.index("auth_round_trip")]
        self.assertFalse(auth["ok"], auth)  # a made-up token is never accepted
        self.assertEqual(rc, 1)
        self.assertNotIn("healthkit_upload", names)
        self.assertConsistent(rc, report)

    def test_help(self):
        rc, out, _ = run_cli(["help", "smoke"])
        self.assertEqual(rc, 0)
        self.assertIn("--read-only", out)
        rc, out, _ = run_cli(["help"])
        self.assertIn("smoke", out)


class SmokeFailures(unittest.TestCase):
    def test_stopped_port_fails(self):
        url = "http://127.0.0.1:%d" % free_port()
        rc, report, err = smoke("--url", url, "--read-only", "--timeout", "5")
        self.assertEqual(rc, 1, err)
        self.assertFalse(report["passed"])
        self.assertEqual([c["name"] for c in report["checks"]], PROBES)
        for c in report["checks"]:
            self.assertFalse(c["ok"], c)
        self.assertIn("no response", report["checks"][0]["detail"])
        self.assertIn("FAILED", err)

    def test_stopped_server_fails(self):
        srv = Server()
        url = "http://127.0.0.1:%d" % srv.port
        rc, _, _ = smoke("--url", url, "--read-only")
        self.assertEqual(rc, 0)
        srv.stop()
        rc, report, _ = smoke("--url", url, "--read-only", "--timeout", "5")
        self.assertEqual(rc, 1)
        self.assertFalse(report["passed"])

    def test_fake_healthy_server_passes(self):
        fake = Fake(healthy_routes())
        try:
            rc, report, _ = smoke("--url", fake.url, "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 0, report)
        self.assertIn("1 of 1 checks healthy", report["checks"][2]["detail"])

    def test_unhealthy_dependency_fails(self):
        fake = Fake(healthy_routes({"database": {"status": "healthy"},
                                    "ml_service": {"status": "unhealthy"}}))
        try:
            rc, report, _ = smoke("--url", fake.url, "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 1)
        health = report["checks"][2]
        self.assertEqual(health["name"], "health")
        self.assertFalse(health["ok"])
        self.assertIn("ml_service=unhealthy", health["detail"])
        self.assertNotIn("database", health["detail"])

    def test_not_ready_fails(self):
        routes = healthy_routes()
        routes["/readiness"] = (503, {"status": "draining"}, {})
        fake = Fake(routes)
        try:
            rc, report, _ = smoke("--url", fake.url, "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 1)
        self.assertFalse(report["checks"][1]["ok"])
        self.assertIn("503", report["checks"][1]["detail"])

    def test_oversized_body_is_refused(self):
        routes = healthy_routes()
        routes["/liveness"] = (200, {"status": "alive", "pad": "x" * (2 * 1024 * 1024)}, {})
        fake = Fake(routes)
        try:
            rc, report, _ = smoke("--url", fake.url, "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 1)
        self.assertFalse(report["checks"][0]["ok"])
        self.assertIn("larger than 1048576 bytes", report["checks"][0]["detail"])
        self.assertTrue(report["checks"][1]["ok"])  # one bad answer spoils nothing else

    def test_missing_security_headers_fail(self):
        headers = dict(GOOD_HEADERS)
        del headers["Content-Security-Policy"]
        headers["X-Content-Type-Options"] = "sniff-away"
        fake = Fake(healthy_routes(), headers=headers, echo_request_id=False)
        try:
            rc, report, _ = smoke("--url", fake.url, "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 1)
        sec = report["checks"][3]
        self.assertEqual(sec["name"], "security_headers")
        self.assertFalse(sec["ok"])
        for word in ("Content-Security-Policy missing", "X-Content-Type-Options wrong",
                     "X-Request-ID missing"):
            self.assertIn(word, sec["detail"])

    def test_full_flow_against_contract_fake(self):
        # A fake that implements the API contract's auth/upload/delete routes
        # exercises the checks that the real server cannot run yet.
        uid = "0b0e2a3c-1d2e-4f00-8a00-000000000001"
        up = "0b0e2a3c-1d2e-4f00-8a00-000000000002"
        routes = healthy_routes()
        routes.update({
            "/api/v1/auth/me": (200, {"user_id": uid, "email": "x@example.com"}, {}),
            "/api/v1/healthkit/upload": (202, {"upload_id": up, "status": "queued"}, {}),
            "/api/v1/healthkit/status/" + up: (200, {"status": "completed"}, {}),
            "/api/v1/insights/history/%s?limit=1" % uid: (200, {"data": {"insights": [{"id": "i"}]}}, {}),
            "/api/v1/health-data/" + up: (200, {}, {}),
        })
        fake = Fake(routes)
        try:
            rc, report, _ = smoke("--url", fake.url, "--token", "t0ken")
        finally:
            fake.close()
        self.assertEqual(rc, 0, report)
        self.assertEqual([c["name"] for c in report["checks"]],
                         PROBES + ["auth_round_trip", "healthkit_upload", "insight", "cleanup"])

    def test_register_read_only_removes_the_account(self):
        uid = "0b0e2a3c-1d2e-4f00-8a00-000000000001"
        routes = healthy_routes()
        routes.update({
            "/api/v1/auth/register": (201, {"user_id": uid, "status": "active"}, {}),
            "/api/v1/auth/login": (200, {"tokens": {"access_token": "a", "token_type": "bearer"}}, {}),
            "/api/v1/auth/me": (200, {"user_id": uid}, {}),
        })
        fake = Fake(routes)
        try:
            rc, report, _ = smoke("--url", fake.url, "--register", "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 0, report)
        names = [c["name"] for c in report["checks"]]
        self.assertEqual(names, PROBES + ["auth_round_trip", "cleanup"])
        self.assertIn("DELETE /api/v1/auth/me", report["checks"][-1]["detail"])

    def test_login_failure_after_register_reports_leftover(self):
        routes = healthy_routes()
        routes["/api/v1/auth/register"] = (201, {"user_id": "u"}, {})
        routes["/api/v1/auth/login"] = (401, {"detail": "bad credentials"}, {})
        fake = Fake(routes)
        try:
            rc, report, _ = smoke("--url", fake.url, "--register", "--read-only")
        finally:
            fake.close()
        self.assertEqual(rc, 1)
        rows = {c["name"]: c for c in report["checks"]}
        self.assertIn("401", rows["auth_round_trip"]["detail"])
        self.assertFalse(rows["cleanup"]["ok"])
        self.assertIn("cannot be removed", rows["cleanup"]["detail"])

    def test_upload_that_never_completes_fails(self):
        uid = "0b0e2a3c-1d2e-4f00-8a00-000000000001"
        up = "0b0e2a3c-1d2e-4f00-8a00-000000000003"
        routes = healthy_routes()
        routes.update({
            "/api/v1/auth/me": (200, {"user_id": uid}, {}),
            "/api/v1/healthkit/upload": (202, {"upload_id": up}, {}),
            "/api/v1/healthkit/status/" + up: (200, {"status": "processing"}, {}),
            "/api/v1/health-data/" + up: (204, {}, {}),
        })
        fake = Fake(routes)
        try:
            rc, report, _ = smoke("--url", fake.url, "--token", "t0ken", "--wait", "1")
        finally:
            fake.close()
        self.assertEqual(rc, 1)
        rows = {c["name"]: c for c in report["checks"]}
        self.assertFalse(rows["healthkit_upload"]["ok"])
        self.assertIn("still \"processing\"", rows["healthkit_upload"]["detail"])
        self.assertFalse(rows["insight"]["ok"])
        self.assertTrue(rows["cleanup"]["ok"])  # what was written is still removed


class SmokeUsage(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        for args in ([], ["--url"], ["--url", "ftp://example.com"],
                     ["--url", "http://h", "--token", "t", "--register"],
                     ["--url", "http://h", "--bogus"],
                     ["--url", "http://h", "--timeout", "0"],
                     ["--url", "http://h?x=1"]):
            rc, out, err = run_cli(["smoke"] + args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertEqual(out, "", args)
            self.assertIn("clarity smoke", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
