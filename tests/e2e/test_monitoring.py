"""Monitoring (#21): /health costs no inference, /metrics is never public in
production, anonymous callers of production's /health get the status only,
and every metric name deploy/terraform's monitoring uses is one the real
/metrics serves."""
import os
import re
import unittest

from harness import Server, production_keys, run_cli

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOKEN = "monitoring-token-0123456789"


def sample(text, name):
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


class HealthCostsNothing(unittest.TestCase):
    def test_thousand_health_requests_run_no_inference(self):
        srv = Server()
        try:
            _, _, before = srv.request("GET", "/metrics")
            n0 = sample(before.decode(), "clarity_pat_inferences_total")
            self.assertIsNotNone(n0)
            c = srv.conn()
            for _ in range(1000):
                status, _, doc = srv.json("GET", "/health", conn=c)
                self.assertEqual(status, 200)
            c.close()
            ml = doc["checks"]["ml_service"]
            self.assertEqual(ml["canary_runs"], 1)  # the start-up run; next one in HEALTH_CANARY_SECONDS
            self.assertIn("canary_age_seconds", ml)
            _, _, after = srv.request("GET", "/metrics")
            self.assertEqual(sample(after.decode(), "clarity_pat_inferences_total"), n0)
        finally:
            srv.stop()


class Production(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = {"ENVIRONMENT": "production", "METRICS_TOKEN": TOKEN}
        env.update(production_keys())
        cls.srv = Server(env=env, migrate=True)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_metrics_refused_on_public_port(self):
        status, hdrs, body = self.srv.request("GET", "/metrics")
        self.assertEqual(status, 404)
        self.assertTrue(hdrs["content-type"].startswith("application/problem+json"))
        self.assertNotIn(b"clarity_http_requests_total", body)
        status, _, _ = self.srv.request("GET", "/metrics", headers={"Authorization": "Bearer wrong-" + TOKEN})
        self.assertEqual(status, 404)
        status, _, body = self.srv.request("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200)
        self.assertIn(b"clarity_http_requests_total", body)

    def test_health_anonymous_gets_status_only(self):
        status, _, doc = self.srv.json("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(sorted(doc), ["status", "timestamp"])
        self.assertEqual(doc["status"], "healthy")
        status, _, doc = self.srv.json("GET", "/health", headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(status, 200)
        self.assertIn("database", doc["checks"])
        self.assertEqual(doc["environment"], "production")

    def test_smoke_passes_with_and_without_token(self):
        import json
        url = "http://127.0.0.1:%d" % self.srv.port
        code, out, err = run_cli(["smoke", "--url", url, "--read-only"])
        self.assertEqual(code, 0, out + err)
        health = [c for c in json.loads(out)["checks"] if c["name"] == "health"][0]
        self.assertIn("status only", health["detail"])
        code, out, err = run_cli(["smoke", "--url", url, "--read-only"], env={"METRICS_TOKEN": TOKEN})
        self.assertEqual(code, 0, out + err)
        health = [c for c in json.loads(out)["checks"] if c["name"] == "health"][0]
        self.assertIn("checks healthy", health["detail"])

    def test_production_without_token_serves_no_metrics(self):
        env = {"ENVIRONMENT": "production"}
        env.update(production_keys())
        srv = Server(env=env, migrate=True)
        try:
            self.assertEqual(srv.request("GET", "/metrics")[0], 404)
            self.assertEqual(srv.request("GET", "/metrics", headers={"Authorization": "Bearer x"})[0], 404)
        finally:
            srv.stop()


class DevelopmentWithToken(unittest.TestCase):
    def test_token_guards_metrics_everywhere_once_set(self):
        srv = Server(env={"METRICS_TOKEN": TOKEN})
        try:
            self.assertEqual(srv.request("GET", "/metrics")[0], 404)
            self.assertEqual(srv.request("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN})[0], 200)
            # Outside production /health keeps its details for everyone.
            self.assertIn("checks", srv.json("GET", "/health")[2])
        finally:
            srv.stop()


class MonitoringAsCode(unittest.TestCase):
    def test_alerts_use_real_metric_names(self):
        with open(os.path.join(ROOT, "deploy", "terraform", "monitoring.tf")) as f:
            tf = f.read()
        used = set(re.findall(r"\b(clarity_[a-z_]+)", tf)) | set(re.findall(r"\b(process_[a-z_]+)", tf))
        # Prometheus histograms are queried by their _bucket series.
        self.assertTrue(used, "monitoring.tf names no metric")
        srv = Server()
        try:
            srv.request("GET", "/health")
            _, _, body = srv.request("GET", "/metrics")
        finally:
            srv.stop()
        served = set(re.findall(r"^# TYPE (\S+) ", body.decode(), re.M))
        for name in sorted(used):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertIn(base, served, "monitoring.tf uses %s, which /metrics does not serve" % name)
        for needed in ("clarity_http_requests_total", "clarity_http_request_duration_seconds",
                       "clarity_queue_oldest_age_seconds", "clarity_queue_dead_letters"):
            self.assertTrue(any(n.startswith(needed) for n in used), needed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
