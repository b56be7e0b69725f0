"""End-to-end tests of the service foundation: the real `clarity serve` over
loopback — probes, metrics, errors, size limits, CORS, request ids, security
headers, configuration refusals and graceful draining."""
import json
import os
import re
import signal
import socket
import sys
import time
import unittest

from harness import Server, production_keys, raw_connect, read_http_response, run_cli

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}


def metric_value(text, name, labels):
    """The value of one Prometheus sample, 0 when absent."""
    want = ",".join('%s="%s"' % kv for kv in labels)
    for line in text.splitlines():
        if line.startswith(name + "{" + want + "}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Foundation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"MAX_REQUEST_BYTES": "65536",
                              "CORS_ORIGINS": '["https://app.example.com"]'})

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def assertProblem(self, status, hdrs, body, code, slug):
        self.assertEqual(status, code)
        self.assertEqual(hdrs["content-type"], "application/problem+json")
        doc = json.loads(body)
        self.assertTrue(PROBLEM_FIELDS <= set(doc), doc)
        self.assertEqual(doc["status"], code)
        self.assertEqual(doc["type"], "https://clarity.dev/problems/" + slug)
        self.assertEqual(doc["request_id"], hdrs["x-request-id"])
        return doc

    def test_liveness(self):
        status, hdrs, doc = self.srv.json("GET", "/liveness")
        self.assertEqual(status, 200)
        self.assertEqual(doc["status"], "alive")
        self.assertRegex(doc["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # whole seconds (issue 17)
        self.assertEqual(hdrs["content-type"], "application/json; charset=utf-8")

    def test_readiness(self):
        status, _, doc = self.srv.json("GET", "/readiness")
        self.assertEqual(status, 200)
        self.assertEqual(doc["status"], "ready")

    def test_health(self):
        status, _, doc = self.srv.json("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(doc["status"], "healthy")
        self.assertEqual(doc["environment"], "development")
        self.assertIn("version", doc)
        self.assertIsInstance(doc["checks"], dict)
        self.assertIsInstance(doc["response_time_ms"], (int, float))
        for name, check in doc["checks"].items():
            self.assertEqual(check["status"], "healthy", name)
            self.assertIn("latency_ms", check)

    def test_head(self):
        status, hdrs, body = self.srv.request("HEAD", "/liveness")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")

    def test_metrics_count_a_request(self):
        labels = [("route", "/readiness"), ("method", "GET"), ("status", "200")]
        _, _, before = self.srv.request("GET", "/metrics")
        b = metric_value(before.decode(), "clarity_http_requests_total", labels)
        self.srv.request("GET", "/readiness")
        # A request is counted when it completes, which libmicrohttpd reports
        # just after the client has its response: poll briefly.
        deadline = time.time() + 10
        while True:
            status, hdrs, after = self.srv.request("GET", "/metrics")
            a = metric_value(after.decode(), "clarity_http_requests_total", labels)
            if a == b + 1 or time.time() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(a, b + 1)
        text = after.decode()
        self.assertIn('clarity_http_request_duration_seconds_bucket{route="/readiness",le="+Inf"}', text)
        self.assertRegex(text, r"process_resident_memory_bytes [1-9]\d*")
        self.assertRegex(text, r"process_open_fds [1-9]\d*")
        self.assertRegex(text, r"clarity_uptime_seconds \d")

    def test_404(self):
        status, hdrs, body = self.srv.request("GET", "/no/such/thing")
        doc = self.assertProblem(status, hdrs, body, 404, "resource-not-found")
        self.assertEqual(doc["instance"], "/no/such/thing")
        self.assertEqual(doc["title"], "Resource Not Found")

    def test_405_with_allow(self):
        status, hdrs, body = self.srv.request("DELETE", "/liveness")
        self.assertProblem(status, hdrs, body, 405, "method-not-allowed")
        self.assertEqual(hdrs["allow"], "GET, HEAD, OPTIONS")

    def test_unknown_method(self):
        status, hdrs, body = self.srv.request("TRACE", "/liveness")
        self.assertProblem(status, hdrs, body, 405, "method-not-allowed")

    def test_413_content_length(self):
        status, hdrs, body = self.srv.request("POST", "/liveness", body=b"x" * 70000)
        self.assertProblem(status, hdrs, body, 413, "payload-too-large")

    def test_413_chunked(self):
        s = raw_connect(self.srv.port)
        s.sendall(b"POST /liveness HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"4000\r\n" + b"y" * 0x4000 + b"\r\n"
        for _ in range(6):  # 96 KiB in 16 KiB chunks, over the 64 KiB limit
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
        status, hdrs, body = read_http_response(s)
        s.close()
        self.assertProblem(status, hdrs, body, 413, "payload-too-large")

    def test_chunked_under_limit_is_read(self):
        s = raw_connect(self.srv.port)
        s.sendall(b"POST /liveness HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n")
        status, hdrs, body = read_http_response(s)
        s.close()
        # The body was accepted by the size limit; the route refuses the method.
        self.assertProblem(status, hdrs, body, 405, "method-not-allowed")

    def test_cors_preflight_allowed(self):
        status, hdrs, body = self.srv.request("OPTIONS", "/liveness", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
        self.assertEqual(status, 204)
        self.assertEqual(hdrs["access-control-allow-origin"], "https://app.example.com")
        self.assertIn("GET", hdrs["access-control-allow-methods"])
        self.assertIn("Authorization", hdrs["access-control-allow-headers"])
        self.assertEqual(hdrs["vary"], "Origin")

    def test_cors_preflight_refused(self):
        status, hdrs, body = self.srv.request("OPTIONS", "/liveness", headers={
            "Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"})
        self.assertProblem(status, hdrs, body, 403, "authorization-denied")
        self.assertNotIn("access-control-allow-origin", hdrs)

    def test_cors_simple_request(self):
        _, hdrs, _ = self.srv.request("GET", "/liveness", headers={"Origin": "https://app.example.com"})
        self.assertEqual(hdrs["access-control-allow-origin"], "https://app.example.com")
        _, hdrs, _ = self.srv.request("GET", "/liveness", headers={"Origin": "https://evil.example.net"})
        self.assertNotIn("access-control-allow-origin", hdrs)

    def test_request_id_echo(self):
        _, hdrs, body = self.srv.request("GET", "/nope", headers={"X-Request-ID": "client-abc.123"})
        self.assertEqual(hdrs["x-request-id"], "client-abc.123")
        self.assertEqual(json.loads(body)["request_id"], "client-abc.123")

    def test_request_id_insane_replaced(self):
        _, hdrs, _ = self.srv.request("GET", "/liveness", headers={"X-Request-ID": "bad id <script>"})
        self.assertRegex(hdrs["x-request-id"], r"^[0-9a-f-]{36}$")
        _, hdrs2, _ = self.srv.request("GET", "/liveness")
        self.assertNotEqual(hdrs["x-request-id"], hdrs2["x-request-id"])

    def test_security_headers(self):
        _, hdrs, _ = self.srv.request("GET", "/liveness")
        self.assertEqual(hdrs["x-content-type-options"], "nosniff")
        self.assertEqual(hdrs["x-frame-options"], "DENY")
        self.assertEqual(hdrs["referrer-policy"], "no-referrer")
        self.assertIn("default-src 'none'", hdrs["content-security-policy"])
        self.assertNotIn("strict-transport-security", hdrs)  # development

    def test_keep_alive(self):
        c = self.srv.conn()
        self.srv.request("GET", "/liveness", conn=c)
        sock = c.sock
        self.assertIsNotNone(sock)
        status, hdrs, _ = self.srv.request("GET", "/readiness", conn=c)
        self.assertEqual(status, 200)
        self.assertIs(c.sock, sock, "the connection was not kept alive")
        c.close()

    def test_access_log(self):
        marker = "SECRET-HEART-RATE-141"
        self.srv.request("POST", "/liveness?token=" + marker, body=marker.encode(),
                         headers={"X-Request-ID": "log-probe-1", "Authorization": "Bearer " + marker})
        # Access lines are buffered per thread and written within ~0.5 s
        # (core/log.h); an idle server must still write them out.
        t0 = time.monotonic()
        recs = []
        while time.monotonic() - t0 < 3.0 and not recs:
            time.sleep(0.05)
            recs = [r for r in self.srv.logs() if r.get("request_id") == "log-probe-1"]
        self.assertEqual(len(recs), 1, recs)
        self.assertLess(time.monotonic() - t0, 1.5, "buffered access line written late")
        r = recs[0]
        self.assertEqual(r["message"], "request")
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["status"], 405)
        self.assertIn("duration_ms", r)
        self.assertIn("bytes", r)
        self.assertIn("timestamp", r)
        self.assertNotIn(marker, self.srv.text())
        self.assertFalse([x for x in self.srv.logs() if x.get("message") == "NON-JSON LOG LINE"])


class Environments(unittest.TestCase):
    def test_hsts_outside_development(self):
        env = {"ENVIRONMENT": "staging"}
        env.update(production_keys())
        srv = Server(env=env, migrate=True)
        try:
            _, hdrs, _ = srv.request("GET", "/liveness")
            self.assertIn("max-age=", hdrs["strict-transport-security"])
            _, _, doc = srv.json("GET", "/health")
            self.assertEqual(doc["environment"], "staging")
        finally:
            srv.stop()

    def test_production_refuses_debug(self):
        rc, out, err = run_cli(["serve"], env={"ENVIRONMENT": "production", "DEBUG": "true", "PORT": "0"})
        self.assertEqual(rc, 2)
        self.assertIn("DEBUG: must be false in production", err)

    def test_staging_requires_keys(self):
        rc, out, err = run_cli(["serve"], env={"ENVIRONMENT": "staging", "PORT": "0"})
        self.assertEqual(rc, 2)
        self.assertIn("JWT_PRIVATE_KEY: required in staging", err)

    def test_bad_port_refused(self):
        rc, out, err = run_cli(["serve"], env={"PORT": "70000"})
        self.assertEqual(rc, 2)
        self.assertIn("PORT", err)
        self.assertEqual(len(err.strip().splitlines()), 1)

    def test_malformed_cors_refused(self):
        rc, out, err = run_cli(["config", "check"], env={"CORS_ORIGINS": "https://a.example.com"})
        self.assertEqual(rc, 2)
        self.assertIn("CORS_ORIGINS: expected a JSON list", err)

    def test_config_check_redacts(self):
        rc, out, err = run_cli(["config", "check"],
                               env={"DATABASE_URL": "postgres://clarity:pw-9f8e@db:5432/clarity"})
        self.assertEqual(rc, 0, err)
        self.assertIn("DATABASE_URL=postgres://clarity:***@db:5432/clarity", out)
        self.assertNotIn("pw-9f8e", out + err)

    def test_secret_file(self):
        d = Server(start=False)
        try:
            path = os.path.join(d.dir, "dburl")
            with open(path, "w") as f:
                f.write("sqlite:%s\n" % os.path.join(d.dir, "from-file.db"))
            rc, out, err = run_cli(["config", "check"], env={"DATABASE_URL_FILE": path})
            self.assertEqual(rc, 0, err)
            self.assertIn("from-file.db  (environment (_FILE))", out)
        finally:
            d.stop()

    def test_dotenv_file(self):
        d = Server(start=False)
        try:
            with open(os.path.join(d.dir, ".env.staging"), "w") as f:
                f.write("PORT=7345\nLOG_LEVEL=WARNING\n")
            env = {"ENVIRONMENT": "staging", "LOG_LEVEL": "ERROR"}
            env.update(production_keys())
            rc, out, err = run_cli(["config", "check"], env=env, cwd=d.dir)
            self.assertEqual(rc, 0, err)
            self.assertIn("PORT=7345  (.env file)", out)
            self.assertIn("LOG_LEVEL=ERROR  (environment)", out)
        finally:
            d.stop()

    def test_cli_usage(self):
        rc, out, err = run_cli(["frobnicate"])
        self.assertEqual(rc, 2)
        self.assertIn("unknown command 'frobnicate'", err)
        rc, out, err = run_cli(["serve", "--verbose"])
        self.assertEqual(rc, 2)
        self.assertIn("unexpected argument '--verbose'", err)
        rc, out, err = run_cli(["version"])
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^clarity \d+\.\d+\.\d+")
        rc, out, err = run_cli(["help", "serve"])
        self.assertEqual(rc, 0)
        self.assertIn("SHUTDOWN_GRACE_SECONDS", out)
        rc, out, err = run_cli(["help", "nope"])
        self.assertEqual(rc, 2)
        rc, out, err = run_cli([])
        self.assertEqual(rc, 2)


class Draining(unittest.TestCase):
    def start_slow_request(self, port, declared=10):
        """A POST whose body is still arriving: in flight at the server."""
        s = raw_connect(port)
        s.sendall(b"POST /liveness HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\nabc" % declared)
        time.sleep(0.2)
        return s

    def connection_refused(self, port, wait=5.0):
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                s.close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:
                # Queued in the backlog as the listener closed: reset, not
                # accepted. Keep going until connects are refused outright.
                continue
        return False

    def test_sigterm_drains(self):
        srv = Server(env={"SHUTDOWN_GRACE_SECONDS": "20"})
        try:
            idle = srv.conn()
            status, _, _ = srv.request("GET", "/liveness", conn=idle)  # a keep-alive connection
            self.assertEqual(status, 200)
            slow = self.start_slow_request(srv.port)
            srv.signal(signal.SIGTERM)
            # New connections are refused...
            self.assertTrue(self.connection_refused(srv.port), "listener still accepting")
            # ...readiness reads 503 on a connection that was already open...
            status, hdrs, body = srv.request("GET", "/readiness", conn=idle)
            self.assertEqual(status, 503)
            self.assertEqual(json.loads(body)["type"], "https://clarity.dev/problems/service-unavailable")
            self.assertIsNone(srv.proc.poll(), "exited with a request in flight")
            # ...and the slow request in flight still completes.
            slow.sendall(b"defghij")
            status, hdrs, body = read_http_response(slow)
            self.assertEqual(status, 405)
            self.assertEqual(json.loads(body)["status"], 405)
            self.assertEqual(srv.wait(15), 0)
            msgs = [r.get("message") for r in srv.logs()]
            self.assertIn("draining", msgs)
            self.assertIn("stopped", msgs)
        finally:
            srv.stop()

    def test_grace_period_bounds_shutdown(self):
        srv = Server(env={"SHUTDOWN_GRACE_SECONDS": "1"})
        try:
            slow = self.start_slow_request(srv.port)
            t0 = time.time()
            srv.signal(signal.SIGTERM)
            self.assertEqual(srv.wait(15), 0)
            self.assertLess(time.time() - t0, 8)
            self.assertTrue([r for r in srv.logs() if r.get("message", "").startswith("grace period over")])
            slow.close()
        finally:
            srv.stop()

    def test_second_signal_exits_at_once(self):
        srv = Server(env={"SHUTDOWN_GRACE_SECONDS": "60"})
        try:
            slow = self.start_slow_request(srv.port)
            srv.signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertIsNone(srv.proc.poll())
            t0 = time.time()
            srv.signal(signal.SIGINT)
            self.assertEqual(srv.wait(10), 1)
            self.assertLess(time.time() - t0, 5)
            slow.close()
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
