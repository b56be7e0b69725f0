"""`make rehearse-deploy` (scripts/rehearse-deploy) end to end: nginx in
front of blue and green `clarity serve` on one PostgreSQL, traffic shifted
10/50/100 and back under load. It must pass with zero failed requests and
every acknowledged upload present; and when an instance is killed while it
still has traffic (--fault), it must fail."""
import json
import os
import re
import shutil
import subprocess
import unittest

import harness

ROOT = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "rehearse-deploy")


def rehearse(*args):
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # the script starts its own PostgreSQL
    p = subprocess.run([SCRIPT, "--bin", harness.BIN] + list(args), env=env, capture_output=True, text=True,
                       timeout=560)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    report = json.loads(lines[-1]) if lines else None
    kept = re.search(r"logs kept in (\S+)", p.stderr)
    return p, report, kept.group(1) if kept else None


class RehearseDeployTest(unittest.TestCase):
    def test_release_and_rollback_lose_nothing(self):
        p, report, kept = rehearse()
        self.assertEqual(p.returncode, 0, p.stdout[-6000:] + p.stderr[-3000:])
        self.assertTrue(report["passed"])
        self.assertEqual(report["failures"], 0)
        self.assertGreater(report["requests"], 0)
        self.assertGreater(report["uploads_acknowledged"], 0)
        self.assertEqual(report["uploads_verified"], report["uploads_acknowledged"])
        self.assertEqual(report["smoke"], [True, True])
        self.assertEqual([g["step"] for g in report["gates"]],
                         ["green 10%", "green 50%", "green 100%", "blue 10%", "blue 50%", "blue 100%"])
        self.assertTrue(all(g["passed"] for g in report["gates"]))
        self.assertEqual(report["exits"], [{"instance": "blue", "status": 0}, {"instance": "green", "status": 0}])
        self.assertEqual(report["nginx"]["5xx"], 0)
        self.assertEqual(report["nginx"]["retried_upstream"], 0)
        # Every phase of the sequence carried load.
        phases = {r["phase"]: r for r in report["phases"]}
        for name in ("release: green 10%", "release: green 50%", "release: green 100%", "release: blue retired",
                     "rollback: blue 10%", "rollback: blue 50%", "rollback: blue 100%", "rollback: green retired"):
            self.assertGreater(phases[name]["requests"], 0, name)
        self.assertIsNone(kept)

    def test_killing_an_instance_in_service_fails_the_rehearsal(self):
        p, report, kept = rehearse("--fault", "kill-old-in-service", "--step-requests", "100")
        try:
            self.assertEqual(p.returncode, 1, p.stdout[-6000:] + p.stderr[-3000:])
            self.assertFalse(report["passed"])
            # Requests to the killed instance fail, or the router has to
            # retry them on the other one; either fails the rehearsal (and
            # so would blue's exit status, had it got that far).
            self.assertRegex(report["error"], r"requests failed|blue exited -9|retried")
            self.assertGreater(report["nginx"]["retried_upstream"] + report["failures"], 0)
        finally:
            if kept:
                shutil.rmtree(kept, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
