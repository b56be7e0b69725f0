"""End-to-end tests of the storage commands with the real binary: `clarity
migrate status|up`, `serve` refusing pending or changed migrations outside
development, the database and pubsub health checks, `clarity backup` of a
running server, and credentials never echoed on connection failures."""
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from harness import BIN, Server, production_keys, run_cli


class Store(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clarity-store-e2e-")
        self.db = os.path.join(self.dir, "clarity.db")
        self.env = {"DATABASE_URL": "sqlite:" + self.db, "HOME": self.dir, "PORT": "0",
                    "HOST": "127.0.0.1", "HTTP_THREADS": "2"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        return run_cli(list(args), env=e, cwd=self.dir)

    def serve_exit(self, env):
        """Run `clarity serve` expecting it to refuse; returns (status, stderr)."""
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if key in os.environ:
                e[key] = os.environ[key]
        e.update(self.env)
        e.update(env)
        p = subprocess.run([BIN, "serve"], env=e, cwd=self.dir, capture_output=True, timeout=60)
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def test_migrate_status_up_rerun(self):
        rc, out, err = self.cli("migrate", "status")
        self.assertEqual(rc, 0, err)
        self.assertIn("001_create_indexes", out)
        self.assertIn("002_add_data_quality_fields", out)
        # Later issues add migrations: count them from the listing.
        known = len(re.findall(r"^\d{3}_\w+\s+pending", out, re.M))
        self.assertGreaterEqual(known, 2)
        self.assertIn("%d pending" % known, out)
        rc, out, err = self.cli("migrate", "up")
        self.assertEqual(rc, 0, err)
        self.assertIn("applied %d migrations" % known, out)
        rc, out, err = self.cli("migrate", "up")
        self.assertEqual(rc, 0, err)
        self.assertIn("applied 0 migrations", out)
        rc, out, err = self.cli("migrate", "status")
        self.assertEqual(rc, 0, err)
        self.assertIn("0 pending", out)
        self.assertEqual(self.cli("migrate")[0], 2)
        self.assertEqual(self.cli("migrate", "sideways")[0], 2)
        self.assertEqual(self.cli("migrate", "up", "--to", "999_nope")[0], 2)

    def test_production_refuses_pending_then_serves_after_migrate(self):
        prod = dict(production_keys(), ENVIRONMENT="production", CORS_ORIGINS='["https://app.example"]')
        rc, err = self.serve_exit(prod)
        self.assertEqual(rc, 1, err)
        self.assertIn("pending migrations", err)
        self.assertIn("clarity migrate up", err)
        rc, out, err = self.cli("migrate", "up", env=prod)
        self.assertEqual(rc, 0, err)
        token = "monitoring-token-0123456789"
        srv = Server(env=dict(prod, DATABASE_URL=self.env["DATABASE_URL"], METRICS_TOKEN=token))
        try:
            # Production shows /health's details to monitoring only (#21).
            status, _, body = srv.json("GET", "/health", headers={"Authorization": "Bearer " + token})
            self.assertEqual(status, 200, body)
            checks = body["checks"]
            self.assertEqual(checks["database"]["status"], "healthy")
            self.assertEqual(checks["database"]["backend"], "sqlite")
            self.assertEqual(checks["pubsub"]["status"], "healthy")
            self.assertIn("health-data-processing", checks["pubsub"]["topics"])
            # An online backup of the running server's database.
            path = os.path.join(self.dir, "backup", "copy.db")
            rc, out, err = self.cli("backup", path, env=prod)
            self.assertEqual(rc, 0, err)
            self.assertTrue(os.path.exists(path))
            self.assertFalse(os.path.exists(path + ".partial"))
            rc, out, err = self.cli("migrate", "status", env=dict(prod, DATABASE_URL="sqlite:" + path))
            self.assertEqual(rc, 0, err)
            self.assertIn("0 pending", out)
        finally:
            srv.stop()

    def test_development_migrates_by_itself(self):
        srv = Server(env={"DATABASE_URL": self.env["DATABASE_URL"]})
        try:
            status, _, body = srv.json("GET", "/health")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["checks"]["database"]["status"], "healthy")
        finally:
            srv.stop()
        rc, out, err = self.cli("migrate", "status")
        self.assertIn("0 pending", out)

    def test_changed_checksum_is_refused(self):
        self.assertEqual(self.cli("migrate", "up")[0], 0)
        con = sqlite3.connect(self.db)
        con.execute("UPDATE _migrations SET checksum = 'tampered' WHERE name = '001_create_indexes'")
        con.commit()
        con.close()
        rc, out, err = self.cli("migrate", "up")
        self.assertEqual(rc, 1)
        self.assertIn("001_create_indexes", err)
        self.assertIn("changed", err)
        rc, out, err = self.cli("migrate", "status")
        self.assertEqual(rc, 1)
        self.assertIn("CHANGED", out)
        # Status tells applied, pending, changed and unknown apart: the
        # migrations after the changed one stay "applied" (they used to show
        # as pending), and a row from a newer binary is listed as unknown.
        con = sqlite3.connect(self.db)
        known = con.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
        con.execute("INSERT INTO _migrations (name, checksum, applied_at, complete) "
                    "SELECT '999_from_a_newer_binary', 'abcdef', applied_at, 1 FROM _migrations LIMIT 1")
        con.execute("DELETE FROM _migrations WHERE name = (SELECT MAX(name) FROM _migrations "
                    "WHERE name < '999')")
        con.commit()
        con.close()
        rc, out, err = self.cli("migrate", "status")
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"(?m)^001_create_indexes\s+CHANGED ")
        self.assertRegex(out, r"(?m)^002_add_data_quality_fields\s+applied ")
        self.assertRegex(out, r"(?m)^999_from_a_newer_binary\s+UNKNOWN ")
        self.assertEqual(len(re.findall(r"(?m)^\d{3}_\w+\s+pending ", out)), 1)
        self.assertIn("%d applied, 1 pending, 1 changed, 1 unknown" % (known - 2), out)
        rc, err = self.serve_exit({})
        self.assertEqual(rc, 1, err)
        self.assertIn("001_create_indexes", err)

    def test_connection_errors_hide_the_password(self):
        url = "postgres://clarity:s3cret-pw@127.0.0.1:1/clarity?connect_timeout=2"
        for args in (["migrate", "status"], ["backup", os.path.join(self.dir, "x")]):
            rc, out, err = self.cli(*args, env={"DATABASE_URL": url})
            self.assertEqual(rc, 1, err)
            self.assertNotIn("s3cret-pw", out + err)
            self.assertIn("***", err)
        rc, err = self.serve_exit({"DATABASE_URL": url})
        self.assertEqual(rc, 1)
        self.assertNotIn("s3cret-pw", err)

    def test_backup_usage(self):
        self.assertEqual(self.cli("backup")[0], 2)
        self.assertEqual(self.cli("backup", "a", "b")[0], 2)


if __name__ == "__main__":
    unittest.main()
