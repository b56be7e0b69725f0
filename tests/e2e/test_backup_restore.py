"""The backup and restore procedures of docs/operations.md, done for real.

SQLite: `clarity backup PATH` of a live server while uploads keep arriving,
the copy restored into a fresh data directory, `clarity serve` started on it
(staging: it refuses a database with pending migrations), and every upload
acknowledged before the backup began is found there through the API, with
its samples; the same password logs in. The restore needs the same
ENCRYPTION_KEY: with another one `clarity keys status` and `serve` refuse.

PostgreSQL: `pg_dump --format=custom` of a live server's database,
`pg_restore` into a new, empty database, `clarity serve` on it, data found.
The module runs itself under scripts/pg-test-server when no PostgreSQL is
given (CLARITY_TEST_PG_URL), so ctest needs nothing special."""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse

import loadgen
from harness import Server, production_keys, run_cli

ROOT = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIMITS = {"RATE_LIMITS": "auth=100000/60,upload=100000/60,api=100000/60,insights=100000/60"}


def upload(port, user_id, token, n):
    status, doc = loadgen.call("127.0.0.1", port, "POST", "/api/v1/healthkit/upload",
                               loadgen.upload_body(user_id, n), token=token)
    assert status == 202, (status, doc)
    return doc["upload_id"]


def assert_restored(test, srv, email, user_id, ids):
    """The restored server knows the account (password and all) and every
    upload in ids, with its sample."""
    status, doc = loadgen.call("127.0.0.1", srv.port, "POST", "/api/v1/auth/login",
                               {"email": email, "password": loadgen.PASSWORD})
    test.assertEqual(status, 200, doc)
    token = doc["tokens"]["access_token"]
    for uid in ids:
        status, doc = loadgen.call("127.0.0.1", srv.port, "GET", "/api/v1/health-data/" + uid, token=token)
        test.assertEqual(status, 200, (uid, doc))
        test.assertEqual(len(doc["metrics"]), 1, doc)
    status, doc = loadgen.call("127.0.0.1", srv.port, "GET", "/api/v1/auth/me", token=token)
    test.assertEqual((status, doc["user_id"]), (200, user_id))


class Uploader(threading.Thread):
    """Keeps uploading until stopped: the backup is taken under writes."""

    def __init__(self, port, user_id, token):
        super().__init__(daemon=True)
        self.args = (port, user_id, token)
        self.stopping = threading.Event()
        self.ids = []
        self.error = None

    def run(self):
        n = 1000
        try:
            while not self.stopping.is_set():
                n += 1
                self.ids.append(upload(*self.args, n))
        except Exception as e:  # reported by the test
            self.error = e


class SQLiteBackupRestore(unittest.TestCase):
    def test_backup_live_server_restore_into_fresh_directory(self):
        keys = production_keys()
        env = dict(LIMITS, ENVIRONMENT="staging", **keys)
        a = Server(env=env, migrate=True)
        b = None
        restore_dir = tempfile.mkdtemp(prefix="clarity-restore-")
        try:
            email = "backup-%s@example.com" % os.urandom(4).hex()
            user_id, token = loadgen.register("127.0.0.1", a.port, email)
            before = [upload(a.port, user_id, token, i) for i in range(5)]
            writer = Uploader(a.port, user_id, token)
            writer.start()
            try:
                path = os.path.join(a.dir, "backups", "clarity-backup.db")
                rc, out, err = run_cli(["backup", path], env=a.env, cwd=a.dir)
                self.assertEqual(rc, 0, err)
                self.assertIn("backed up", out)
            finally:
                writer.stopping.set()
                writer.join(30)
            self.assertIsNone(writer.error)
            # Restore as documented: a fresh data directory, the copy at
            # the DATABASE_URL path, the same keys, no -wal/-shm beside it.
            db = os.path.join(restore_dir, "clarity.db")
            shutil.copy(path, db)
            self.assertFalse(os.path.exists(db + "-wal"))
            renv = dict(env, DATABASE_URL="sqlite:" + db)
            rc, out, err = run_cli(["migrate", "status"], env=renv, cwd=restore_dir)
            self.assertEqual(rc, 0, err)
            self.assertIn("0 pending", out)
            # Another ENCRYPTION_KEY cannot open the restored key ring.
            wrong = dict(renv, ENCRYPTION_KEY=base64.b64encode(os.urandom(32)).decode())
            rc, out, err = run_cli(["keys", "status"], env=wrong, cwd=restore_dir)
            self.assertEqual(rc, 1, out + err)
            rc, out, err = run_cli(["keys", "status"], env=renv, cwd=restore_dir)
            self.assertEqual(rc, 0, err)
            b = Server(env=renv, workdir=restore_dir)
            assert_restored(self, b, email, user_id, before)
            # Uploads acknowledged while the backup ran are there or not as
            # a whole (the copy is one snapshot): each one the restored
            # server knows has its sample.
            status, doc = loadgen.call("127.0.0.1", b.port, "POST", "/api/v1/auth/login",
                                       {"email": email, "password": loadgen.PASSWORD})
            for uid in writer.ids:
                st, d = loadgen.call("127.0.0.1", b.port, "GET", "/api/v1/health-data/" + uid,
                                     token=doc["tokens"]["access_token"])
                self.assertIn(st, (200, 404))
                if st == 200:
                    self.assertEqual(len(d["metrics"]), 1)
            # The restored server takes new writes.
            status, doc = loadgen.call("127.0.0.1", b.port, "POST", "/api/v1/auth/login",
                                       {"email": email, "password": loadgen.PASSWORD})
            upload(b.port, user_id, doc["tokens"]["access_token"], 99)
        finally:
            if b is not None:
                b.stop()
            a.stop()
            shutil.rmtree(restore_dir, ignore_errors=True)


class PostgresDumpRestore(unittest.TestCase):
    def test_pg_dump_live_server_pg_restore_into_new_database(self):
        url = os.environ.get("CLARITY_TEST_PG_URL")
        self.assertTrue(url, "run this module directly: it starts scripts/pg-test-server itself")
        u = urllib.parse.urlsplit(url)
        restored_url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/clarity_restored", u.query, ""))
        keys = production_keys()
        env = dict(LIMITS, ENVIRONMENT="staging", DATABASE_URL=url, **keys)
        a = Server(env=env, migrate=True)
        b = None
        tmp = tempfile.mkdtemp(prefix="clarity-pgdump-")
        try:
            email = "pgdump-%s@example.com" % os.urandom(4).hex()
            user_id, token = loadgen.register("127.0.0.1", a.port, email)
            ids = [upload(a.port, user_id, token, i) for i in range(5)]
            dump = os.path.join(tmp, "clarity.dump")
            # Online: the server keeps serving (and writing) meanwhile.
            writer = Uploader(a.port, user_id, token)
            writer.start()
            try:
                p = subprocess.run(["pg_dump", "--format=custom", "--file=" + dump, url], capture_output=True,
                                   text=True, timeout=300)
            finally:
                writer.stopping.set()
                writer.join(30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIsNone(writer.error)
            p = subprocess.run(["createdb", "-h", u.hostname, "-p", str(u.port), "-U", u.username,
                                "clarity_restored"], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname=" + restored_url, dump],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            renv = dict(env, DATABASE_URL=restored_url)
            rc, out, err = run_cli(["migrate", "status"], env=renv)
            self.assertEqual(rc, 0, err)
            self.assertIn("0 pending", out)
            b = Server(env=renv)
            assert_restored(self, b, email, user_id, ids)
            status, doc = loadgen.call("127.0.0.1", b.port, "GET", "/health")
            self.assertEqual(status, 200, doc)
        finally:
            if b is not None:
                b.stop()
            a.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not os.environ.get("CLARITY_TEST_PG_URL"):
        script = os.path.join(ROOT, "scripts", "pg-test-server")
        os.execv(script, [script, "--", sys.executable] + sys.argv)
    unittest.main()
