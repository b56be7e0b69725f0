"""`clarity seed-demo` (#21): demo accounts and a realistic month of data
through a running development server's API; idempotent; refuses production."""
import json
import unittest

from harness import Server, production_keys, run_cli


class SeedDemo(unittest.TestCase):
    def test_seeds_users_and_data_once(self):
        srv = Server(env={"RATE_LIMITS": "upload=1000/60,auth=100/60"})
        try:
            url = "http://127.0.0.1:%d" % srv.port
            code, out, err = run_cli(["seed-demo", "--url", url, "--users", "2", "--days", "7"], timeout=300)
            self.assertEqual(code, 0, err)
            rep = json.loads(out)
            self.assertEqual(rep["environment"], "development")
            self.assertEqual([u["email"] for u in rep["users"]],
                             ["demo1@clarity.example.com", "demo2@clarity.example.com"])
            for u in rep["users"]:
                self.assertEqual(u["uploads"], 7)
                # steps (daytime slots), 96 heart rates, 1 resting, a night of sleep per day
                self.assertGreater(u["samples_stored"], 7 * 150)
                self.assertEqual(u["duplicates_skipped"], 0)
            # The accounts work, and the data is there, by type.
            status, _, doc = srv.json("POST", "/api/v1/auth/login",
                                      json.dumps({"email": "demo1@clarity.example.com",
                                                  "password": rep["users"][0]["password"]}),
                                      {"Content-Type": "application/json"})
            self.assertEqual(status, 200, doc)
            tok = doc["tokens"]["access_token"]
            for kind in ("steps", "heart_rate", "resting_heart_rate", "sleep_stage"):
                status, _, page = srv.json("GET", "/api/v1/health-data?limit=5&data_type=" + kind,
                                           headers={"Authorization": "Bearer " + tok})
                self.assertEqual(status, 200, page)
                self.assertTrue(page["data"], kind)
            # A second run stores nothing twice.
            code, out, err = run_cli(["seed-demo", "--url", url, "--users", "2", "--days", "7"], timeout=300)
            self.assertEqual(code, 0, err)
            again = json.loads(out)
            for first, second in zip(rep["users"], again["users"]):
                self.assertEqual(second["samples_stored"], 0)
                self.assertEqual(second["duplicates_skipped"], first["samples_stored"])
        finally:
            srv.stop()

    def test_refuses_production_and_bad_usage(self):
        env = {"ENVIRONMENT": "production"}
        env.update(production_keys())
        srv = Server(env=env, migrate=True)
        try:
            code, out, err = run_cli(["seed-demo", "--url", "http://127.0.0.1:%d" % srv.port])
            self.assertEqual(code, 1, out + err)
            self.assertIn("refusing", err)
        finally:
            srv.stop()
        self.assertEqual(run_cli(["seed-demo"])[0], 2)
        self.assertEqual(run_cli(["seed-demo", "--url", "ftp://x"])[0], 2)
        self.assertEqual(run_cli(["seed-demo", "--url", "http://x", "--days", "0"])[0], 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
