"""Issue #19's rollback, end to end on the real binary and SQLite file:
samples uploaded into sealed blocks, `clarity migrate samples-to-rows`
puts them back as health_samples rows (with their ids) and undoes
migration 013, which is what the release before blocks needs to start;
upgrading again (migration 013, the backfill) gives the same samples, ids
and export as before. The database file holds plaintext sample values only
while they are rows. The contract migration (014, `clarity migrate
contract`) drops health_samples once it is empty; the server serves the
same export without it, and the rollback makes the table again first."""
import json
import sqlite3
import time
import unittest
import uuid

from harness import Server, run_cli

PASSWORD = "Correct-Horse-9"
CANARY_SOURCE = "RollbackCanarySource"


class SampleRollback(unittest.TestCase):
    def export(self, srv, headers):
        status, _, body = srv.request("GET", "/api/v1/health-data/export", None, headers)
        self.assertEqual(status, 200)
        rows = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        return sorted(rows, key=lambda r: (r["start_date"], r["id"]))

    def contract(self, env, workdir, db_path):
        """`clarity migrate contract`: 014 applied, the table and its indexes gone."""
        rc, out, err = run_cli(["migrate", "contract"], env=env, cwd=workdir)
        self.assertEqual(rc, 0, err)
        self.assertIn("applied 1 contract migration", out)
        db = sqlite3.connect(db_path)
        self.assertEqual(db.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'health_samples%'")
                         .fetchone()[0], 0)
        self.assertEqual(db.execute("SELECT count(*) FROM _migrations WHERE name = '014_drop_health_samples'")
                         .fetchone()[0], 1)
        db.close()
        rc, out, err = run_cli(["migrate", "contract"], env=env, cwd=workdir)
        self.assertEqual(rc, 0, err)
        self.assertIn("applied 0 contract migrations", out)

    def test_rollback_and_upgrade_keep_every_sample(self):
        env = {"RATE_LIMITS": "auth=1000/60,upload=100000/60,api=100000/60", "WORKER_THREADS": "0"}
        srv = Server(env=env)
        workdir, db_path = srv.dir, srv.dir + "/clarity.db"
        email = "rb-%s@example.com" % uuid.uuid4().hex[:8]
        body = {"email": email, "password": PASSWORD, "first_name": "R", "last_name": "B",
                "terms_accepted": True, "privacy_policy_accepted": True}
        status, _, reg = srv.json("POST", "/api/v1/auth/register", json.dumps(body),
                                  {"Content-Type": "application/json"})
        self.assertEqual(status, 201, reg)
        _, _, login = srv.json("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": PASSWORD}),
                               {"Content-Type": "application/json"})
        headers = {"Authorization": "Bearer " + login["tokens"]["access_token"],
                   "Content-Type": "application/json"}
        for day in (3, 4, 5):
            samples = [{"uuid": str(uuid.uuid4()), "identifier": "HKQuantityTypeIdentifierHeartRate",
                        "value": 55 + k % 30, "unit": "count/min", "source_name": CANARY_SOURCE,
                        "start_date": "2026-11-%02dT%02d:%02d:00Z" % (day, k // 60, k % 60),
                        "end_date": "2026-11-%02dT%02d:%02d:00Z" % (day, k // 60, k % 60)}
                       for k in range(300)]
            status, _, doc = srv.json("POST", "/api/v1/healthkit/upload",
                                      json.dumps({"user_id": reg["user_id"], "quantity_samples": samples}), headers)
            self.assertEqual(status, 202, doc)
        before = self.export(srv, headers)
        self.assertEqual(len(before), 900)
        srv.keep_dir = True
        srv.stop()

        db = sqlite3.connect(db_path)
        self.assertEqual(db.execute("SELECT count(*) FROM health_samples").fetchone()[0], 0)
        self.assertEqual(db.execute("SELECT count(*) FROM sample_days WHERE substr(data, 1, 1) <> X'01'")
                         .fetchone()[0], 0)  # every block sealed
        db.close()
        with open(db_path, "rb") as f:
            self.assertNotIn(CANARY_SOURCE.encode(), f.read())

        # The contract: listed, not pending; applied on its own command.
        rc, out, err = run_cli(["migrate", "status"], env=srv.env, cwd=workdir)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"014_drop_health_samples +contract")
        self.assertIn("0 pending", out)
        self.assertIn("1 contract", out)
        self.contract(srv.env, workdir, db_path)
        srv1 = Server(env=env, workdir=workdir)
        try:
            self.assertTrue(self.export(srv1, headers) == before, "export differs after the contract")
        finally:
            srv1.stop()

        rc, out, err = run_cli(["migrate", "samples-to-rows", "--batch", "2"], env=srv.env, cwd=workdir)
        self.assertEqual(rc, 0, err)
        self.assertIn("900 samples, done", out)
        self.assertIn("014_drop_health_samples undone", out)
        self.assertIn("013_sample_blocks undone", out)
        db = sqlite3.connect(db_path)
        self.assertEqual(db.execute("SELECT count(*) FROM health_samples").fetchone()[0], 900)
        self.assertEqual(db.execute("SELECT count(*) FROM sample_days WHERE substr(data, 1, 1) = X'01'")
                         .fetchone()[0], 0)  # the release before reads unsealed days
        self.assertEqual(db.execute("SELECT count(*) FROM _migrations WHERE name = '013_sample_blocks'")
                         .fetchone()[0], 0)
        self.assertNotIn("sample_seq", [r[1] for r in db.execute("PRAGMA table_info(users)")])
        ids = sorted(r[0] for r in db.execute("SELECT id FROM health_samples"))
        db.close()
        want = sorted(int(r["id"]) for r in before)
        self.assertTrue(ids == want, "ids differ: %s vs %s" % (ids[:3], want[:3]))

        # Upgrade again: 013 applied again, and the backfill moves the rows
        # back into sealed blocks.
        rc, out, err = run_cli(["migrate", "up"], env=srv.env, cwd=workdir)
        self.assertEqual(rc, 0, err)
        self.assertIn("applied 1 migration", out)
        rc, out, err = run_cli(["migrate", "samples-backfill"], env=srv.env, cwd=workdir)
        self.assertEqual(rc, 0, err)
        self.assertIn("900 samples, done", out)
        srv2 = Server(env=env, workdir=workdir)
        try:
            after = self.export(srv2, headers)
            self.assertTrue(after == before, "export differs: %d vs %d rows; first %s vs %s" % (len(after), len(before), after[:1], before[:1]))
        finally:
            srv2.stop()
        db = sqlite3.connect(db_path)
        self.assertEqual(db.execute("SELECT count(*) FROM health_samples").fetchone()[0], 0)
        db.close()
        self.contract(srv.env, workdir, db_path)
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
