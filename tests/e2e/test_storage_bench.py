"""bench/storage_bench.py and its generator keep working against the real
binary (issue #19): the benchmark must survive the sample store's rewrite,
since it only uses clarity's CLI and HTTP API. A tiny run on SQLite and
PostgreSQL with the same binary as current and baseline: every phase
measured, samples counted the same way by both, the product's raw-body
purge observed, the generator deterministic."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

SRC = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.environ.get("CLARITY_BIN", "build/release/clarity"))
sys.path.insert(0, os.path.join(SRC, "bench"))
import health_gen  # noqa: E402


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Generator(unittest.TestCase):
    def test_export_is_deterministic_per_seed(self):
        d = tempfile.mkdtemp(prefix="clarity-gen-")
        a, b, c = (os.path.join(d, n) for n in ("a.xml", "b.xml", "c.xml"))
        sa = health_gen.write_export(a, 3, seed=7)
        sb = health_gen.write_export(b, 3, seed=7)
        health_gen.write_export(c, 3, seed=8)
        self.assertEqual(sa, sb)
        self.assertEqual(sa[0], os.path.getsize(a))
        self.assertEqual(digest(a), digest(b))
        self.assertNotEqual(digest(a), digest(c))
        with open(a, encoding="utf-8") as f:
            text = f.read()
        for what in ("HKQuantityTypeIdentifierHeartRate", "HKCategoryValueSleepAnalysisAsleepREM",
                     "HKCategoryValueSleepAnalysisAsleepDeep", "<Workout ", "HKQuantityTypeIdentifierBodyMass",
                     "HKQuantityTypeIdentifierRestingHeartRate", "HKDevice"):
            self.assertIn(what, text)
        for f in (a, b, c):
            os.unlink(f)
        os.rmdir(d)

    def test_app_sync_body_is_the_apps_shape(self):
        body = health_gen.app_sync_body(health_gen.Person(3), "u", 0, 1, 1735800000000)
        kinds = {s["sample_type"] for s in body["samples"]}
        self.assertEqual(kinds, {"heartRate", "stepCount", "restingHeartRate", "sleepAnalysis"})
        for s in body["samples"]:
            self.assertNotIn("uuid", s)
            self.assertRegex(s["start_date"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            if s["sample_type"] == "sleepAnalysis":
                self.assertIn(s["category_value"], (0, 2, 3, 4, 5))


class TinyRun(unittest.TestCase):
    def test_both_backends_same_binary_twice(self):
        out = tempfile.mktemp(prefix="clarity-storage-bench-", suffix=".json")
        env = dict(os.environ)
        env.pop("CLARITY_TEST_PG_URL", None)
        p = subprocess.run([sys.executable, os.path.join(SRC, "bench", "storage_bench.py"), "--bin", BIN,
                            "--baseline", BIN, "--days", "3", "--sync-days", "3", "--uploads", "2",
                            "--json", out], env=env, capture_output=True, text=True, timeout=540)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        self.assertIn("== Summary", p.stdout)
        with open(out) as f:
            doc = json.load(f)
        os.unlink(out)
        for backend in ("sqlite", "postgres"):
            runs = [doc["runs"]["%s/%s" % (backend, l)] for l in ("current", "baseline")]
            for r in runs:
                imp, app = r["import"], r["app"]
                self.assertGreater(imp["stored"], 1000)
                self.assertGreater(imp["unknown"], 0)  # body mass, audio exposure: counted, not stored
                self.assertGreater(app["stored"], 0)
                self.assertGreater(app["skipped"], 0)  # the re-sent window
                self.assertEqual(r["all-in"]["samples"], imp["stored"] + app["stored"])
                self.assertGreater(imp["rss_mb"], 1)
                self.assertGreater(imp["mb_per_s"], 0)
                self.assertGreater(r["all-in"]["total"], r["export"]["total"])
                if r["purged_bodies"] is not None:
                    self.assertGreater(r["purged_bodies"], 0)
                    self.assertLess(r["raw purged"]["total"], r["all-in"]["total"])
            # Same binary, same data: the same samples and (within page
            # fill) the same bytes.
            self.assertEqual(runs[0]["all-in"]["samples"], runs[1]["all-in"]["samples"])
            a, b = runs[0]["all-in"]["total"], runs[1]["all-in"]["total"]
            self.assertLess(abs(a - b), 0.05 * max(a, b))
        for label in ("current", "baseline"):
            self.assertGreater(doc["uploads"][label]["samples_per_s"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
