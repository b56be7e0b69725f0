"""`clarity users` against a real database, SQLite and PostgreSQL (#21):
each subcommand changes what it says, is audited, and a running server
honours it (log in with the printed temporary password, a disabled account
is refused, an admin sees the audit log); reset-password issues a one-time
code that POST /api/v1/auth/reset-password redeems once."""
import json
import os
import signal
import subprocess
import tempfile
import shutil
import time
import unittest

from harness import Server, run_cli

SOURCE_DIR = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PG_INITDB = "/usr/lib/postgresql/15/bin/initdb"


class UsersMixin:
    """Needs self.env (DATABASE_URL of a migrated database) and self.db_rows(sql)."""

    def cli(self, *args, stdin=None):
        return run_cli(["users"] + list(args), env=dict(self.env, USER="priya"), cwd=self.dir,
                       stdin=stdin.encode() if stdin else None)

    def login(self, srv, email, password):
        return srv.json("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": password}),
                        {"Content-Type": "application/json"})

    def test_every_subcommand(self):
        code, out, err = self.cli("create", "Admin@Example.com", "--first-name", "Ada", "--last-name", "Min",
                                  "--role", "admin")
        self.assertEqual(code, 0, err)
        admin = json.loads(out)
        self.assertEqual(admin["email"], "admin@example.com")
        self.assertEqual(admin["role"], "admin")
        temp = admin["temporary_password"]
        self.assertGreaterEqual(len(temp), 16)
        # Same email again: refused, nothing written.
        code, _, err = self.cli("create", "admin@example.com", "--first-name", "A", "--last-name", "B")
        self.assertEqual(code, 1)
        self.assertIn("already exists", err)
        code, out, err = self.cli("create", "pat@example.com", "--first-name", "Pat", "--last-name", "Ient",
                                  "--password-stdin", stdin="Correct-Horse9!\n")
        self.assertEqual(code, 0, err)
        self.assertNotIn("temporary_password", json.loads(out))
        code, _, err = self.cli("create", "weak@example.com", "--first-name", "W", "--last-name", "K",
                                "--password-stdin", stdin="short\n")
        self.assertEqual(code, 2, err)
        self.assertEqual(self.cli("create", "x@example.com", "--first-name", "X", "--last-name", "Y",
                                  "--role", "god")[0], 2)

        code, out, err = self.cli("list")
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(u["email"] for u in json.loads(out)), ["admin@example.com", "pat@example.com"])
        code, out, err = self.cli("show", "PAT@example.com")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["role"], "patient")
        self.assertEqual(self.cli("show", "nobody@example.com")[0], 1)

        code, out, err = self.cli("set-role", "pat@example.com", "clinician")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["role"], "clinician")
        self.assertEqual(self.db_rows("SELECT role FROM users WHERE email = 'pat@example.com'"), [("clinician",)])

        # A locked account (as the login lockout leaves it) is unlocked.
        self.db_exec("UPDATE users SET status = 'locked', failed_logins = 7 WHERE email = 'pat@example.com'")
        code, out, err = self.cli("unlock", "pat@example.com")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.db_rows("SELECT status, failed_logins FROM users WHERE email = 'pat@example.com'"),
                         [("active", 0)])

        srv = Server(env=dict(self.env, RATE_LIMITS="auth=1000/60"))
        try:
            status, _, doc = self.login(srv, "admin@example.com", temp)
            self.assertEqual(status, 200, doc)
            admin_token = doc["tokens"]["access_token"]
            status, _, doc = self.login(srv, "pat@example.com", "Correct-Horse9!")
            self.assertEqual(status, 200, doc)
            old_access = doc["tokens"]["access_token"]
            self.assertEqual(srv.request("GET", "/api/v1/auth/me",
                                         headers={"Authorization": "Bearer " + old_access})[0], 200)
            # reset-password: a one-time code, no password; the old one stops working.
            code, out, err = self.cli("reset-password", "pat@example.com")
            self.assertEqual(code, 0, err)
            self.assertNotIn("temporary_password", json.loads(out))
            reset_code = json.loads(out)["reset_code"]
            self.assertEqual(self.login(srv, "pat@example.com", "Correct-Horse9!")[0], 401)
            # The access token issued before the reset stops working (the
            # server polls revocations; allow it generous time under load).
            deadline = time.time() + 30
            while time.time() < deadline and srv.request(
                    "GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " + old_access})[0] == 200:
                time.sleep(0.2)
            self.assertEqual(srv.request("GET", "/api/v1/auth/me",
                                         headers={"Authorization": "Bearer " + old_access})[0], 401)
            new = "New-Horse-7!battery"
            self.assertEqual(self.redeem(srv, "pat@example.com", reset_code, new)[0], 200)
            self.assertEqual(self.login(srv, "pat@example.com", new)[0], 200)
            self.assertEqual(self.db_rows("SELECT COUNT(*) FROM refresh_tokens t JOIN users u ON u.id = t.user_id "
                                          "WHERE u.email = 'pat@example.com'"), [(1,)])
            code, _, err = self.cli("disable", "pat@example.com")
            self.assertEqual(code, 0, err)
            self.assertEqual(self.login(srv, "pat@example.com", new)[0], 401)
            # No reset for a disabled account: refused, nothing written.
            code, out, err = self.cli("reset-password", "pat@example.com")
            self.assertEqual((code, out), (1, ""), err)
            self.assertIn("disabled", err)
            self.assertEqual(self.db_rows("SELECT COUNT(*) FROM password_resets"), [(0,)])
            self.assertEqual(self.db_rows("SELECT COUNT(*) FROM refresh_tokens t JOIN users u ON u.id = t.user_id "
                                          "WHERE u.email = 'pat@example.com'"), [(0,)])
            # Audited: one row per change, naming the operator.
            # The role took effect: the admin may read the audit log.
            status, _, doc = srv.json("GET", "/api/v1/audit?limit=100&user_id=" + admin["id"],
                                      headers={"Authorization": "Bearer " + admin_token})
            self.assertEqual(status, 200, doc)
        finally:
            srv.stop()
        rows = self.db_rows("SELECT action, request_id, outcome FROM audit_log WHERE action LIKE 'cli.user.%' "
                            "ORDER BY created_at, action")
        actions = sorted(r[0] for r in rows)
        self.assertEqual(actions, sorted(["cli.user.create", "cli.user.create", "cli.user.set-role",
                                          "cli.user.unlock", "cli.user.reset-password", "cli.user.disable"]))
        self.assertTrue(all(r[1] == "cli:priya" and r[2] == "success" for r in rows), rows)

    def redeem(self, srv, email, code, password):
        return srv.json("POST", "/api/v1/auth/reset-password",
                        json.dumps({"email": email, "code": code, "new_password": password}),
                        {"Content-Type": "application/json"})

    def reset(self, email):
        code, out, err = self.cli("reset-password", email)
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        self.codes.append(doc["reset_code"])
        self.assertNotIn(doc["reset_code"], err)
        return doc

    def attempts(self, email):
        rows = self.db_rows("SELECT r.attempts FROM password_resets r JOIN users u ON u.id = r.user_id "
                            "WHERE u.email = '%s'" % email)
        return rows[0][0] if rows else None

    def test_reset_code(self):
        """The reset code: works once, a second use, an expired, a replaced,
        a wrong (counted) and a used-up code refused alike, and refused the
        same for an unknown e-mail; the old password and every session end;
        failures lock the (e-mail, address) out; the code is in no log and
        no audit row."""
        self.codes = []
        old_pw, new_pw = "Correct-Horse9!", "Fresh-Start-42!"
        for email in ("pat@example.com", "sam@example.com"):
            code, _, err = self.cli("create", email, "--first-name", "P", "--last-name", "Q", "--password-stdin",
                                    stdin=old_pw + "\n")
            self.assertEqual(code, 0, err)
        self.assertEqual(self.cli("reset-password", "nobody@example.com")[0], 1)

        srv = Server(env=dict(self.env, LOCKOUT_THRESHOLD="7", RATE_LIMITS="auth=1000/60"))
        try:
            status, _, doc = self.login(srv, "pat@example.com", old_pw)
            self.assertEqual(status, 200, doc)
            access, refresh = doc["tokens"]["access_token"], doc["tokens"]["refresh_token"]

            issued = self.reset("pat@example.com")
            code = issued["reset_code"]
            self.assertRegex(code, r"^[A-Za-z0-9_-]{24}$")  # 144 random bits, URL-safe
            self.assertIn("/api/v1/auth/reset-password", issued["reset_with"])
            self.assertIn(code, issued["reset_with"])
            self.assertTrue(issued["reset_code_expires_at"].endswith("Z"))
            # Only a hash is stored, with an expiry an hour out.
            (code_hash, expires, created), = self.db_rows(
                "SELECT r.code_hash, r.expires_at, r.created_at FROM password_resets r JOIN users u "
                "ON u.id = r.user_id WHERE u.email = 'pat@example.com'")
            self.assertEqual(len(code_hash), 64)
            self.assertNotIn(code, code_hash)
            self.assertEqual(int(expires) - int(created), 3600 * 1000)

            # The old password and every session end at once.
            self.assertEqual(self.login(srv, "pat@example.com", old_pw)[0], 401)
            self.assertEqual(srv.json("POST", "/api/v1/auth/refresh", json.dumps({"refresh_token": refresh}),
                                      {"Content-Type": "application/json"})[0], 401)
            deadline = time.time() + 30
            while time.time() < deadline and srv.request(
                    "GET", "/api/v1/auth/me", headers={"Authorization": "Bearer " + access})[0] == 200:
                time.sleep(0.2)
            self.assertEqual(srv.request("GET", "/api/v1/auth/me",
                                         headers={"Authorization": "Bearer " + access})[0], 401)

            # A wrong code: 400 problem, the try counted, nothing else changed.
            status, hdrs, wrong = self.redeem(srv, "pat@example.com", "A" * 24, new_pw)
            self.assertEqual(status, 400, wrong)
            self.assertEqual(hdrs["content-type"], "application/problem+json")
            self.assertEqual(self.attempts("pat@example.com"), 1)
            # The right code for an e-mail without an account: the same answer.
            status, _, unknown = self.redeem(srv, "nobody@example.com", code, new_pw)
            self.assertEqual((status, unknown["type"], unknown["detail"]), (400, wrong["type"], wrong["detail"]))
            # A new password that fails the policy: 422, the code not spent.
            status, _, doc = self.redeem(srv, "pat@example.com", code, "short")
            self.assertEqual(status, 422, doc)
            self.assertEqual([e["pointer"] for e in doc["errors"]], ["/new_password"])
            self.assertEqual(self.attempts("pat@example.com"), 1)

            # The right code works once.
            status, _, doc = self.redeem(srv, "Pat@Example.com", code, new_pw)
            self.assertEqual(status, 200, doc)
            self.assertIsNone(self.attempts("pat@example.com"))
            self.assertEqual(self.login(srv, "pat@example.com", old_pw)[0], 401)
            status, _, doc = self.login(srv, "pat@example.com", new_pw)
            self.assertEqual(status, 200, doc)
            access = doc["tokens"]["access_token"]
            status, _, again = self.redeem(srv, "pat@example.com", code, "Another-One-99!")
            self.assertEqual((status, again["detail"]), (400, wrong["detail"]))
            self.assertEqual(self.login(srv, "pat@example.com", new_pw)[0], 200)

            # Expired (the row's expiry moved into the past): refused.
            code = self.reset("pat@example.com")["reset_code"]
            self.db_exec("UPDATE password_resets SET expires_at = 1")
            self.assertEqual(self.redeem(srv, "pat@example.com", code, "Another-One-99!")[0], 400)
            # A new code replaces the old one.
            first = self.reset("pat@example.com")["reset_code"]
            second = self.reset("pat@example.com")["reset_code"]
            self.assertNotEqual(first, second)
            self.assertEqual(self.redeem(srv, "pat@example.com", first, "Another-One-99!")[0], 400)
            self.assertEqual(self.redeem(srv, "pat@example.com", second, "Another-One-99!")[0], 200)
            self.assertEqual(self.login(srv, "pat@example.com", "Another-One-99!")[0], 200)

            # Tries are bounded: after 5 wrong ones the right code is refused
            # too; the (e-mail, address) is then locked out: 429 + Retry-After.
            code = self.reset("sam@example.com")["reset_code"]
            for i in range(5):
                self.assertEqual(self.redeem(srv, "sam@example.com", "B" * 23 + str(i), new_pw)[0], 400)
            self.assertEqual(self.attempts("sam@example.com"), 5)
            self.assertEqual(self.redeem(srv, "sam@example.com", code, new_pw)[0], 400)
            self.assertEqual(self.redeem(srv, "sam@example.com", code, new_pw)[0], 400)  # 7th failure: locked
            status, hdrs, doc = self.redeem(srv, "sam@example.com", code, new_pw)
            self.assertEqual(status, 429, doc)
            self.assertGreater(int(hdrs["retry-after"]), 0)
            self.assertEqual(self.login(srv, "sam@example.com", new_pw)[0], 401)
            logs = srv.text()
        finally:
            srv.stop()
        # Audited (operator and API), and the code is in no log and no audit row.
        rows = self.db_rows("SELECT action, outcome, user_id, resource_id, request_id, ip FROM audit_log "
                            "WHERE action IN ('auth.reset_password', 'cli.user.reset-password')")
        outcomes = [(r[0], r[1]) for r in rows]
        self.assertEqual(outcomes.count(("cli.user.reset-password", "success")), 5)
        self.assertEqual(outcomes.count(("auth.reset_password", "success")), 2)
        self.assertIn(("auth.reset_password", "failure"), outcomes)
        self.assertIn(("auth.reset_password", "locked"), outcomes)
        everything = json.dumps(self.db_rows("SELECT * FROM audit_log"))
        for c in self.codes:
            self.assertNotIn(c, logs)
            self.assertNotIn(c, everything)

    def test_usage(self):
        self.assertEqual(self.cli()[0], 2)
        self.assertEqual(self.cli("frobnicate")[0], 2)
        self.assertEqual(self.cli("set-role", "a@example.com")[0], 2)
        self.assertEqual(self.cli("set-role", "a@example.com", "emperor")[0], 2)


class SQLite(UsersMixin, unittest.TestCase):
    def setUp(self):
        import sqlite3
        self.dir = tempfile.mkdtemp(prefix="clarity-users-")
        self.path = os.path.join(self.dir, "clarity.db")
        self.env = {"DATABASE_URL": "sqlite:" + self.path, "HOME": self.dir, "PASSWORD_HASH_PROFILE": "interactive"}
        code, _, err = run_cli(["migrate", "up"], env=self.env, cwd=self.dir)
        self.assertEqual(code, 0, err)
        self.sqlite3 = sqlite3

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def db_rows(self, sql):
        con = self.sqlite3.connect(self.path)
        try:
            return [tuple(r) for r in con.execute(sql).fetchall()]
        finally:
            con.close()

    def db_exec(self, sql):
        con = self.sqlite3.connect(self.path)
        con.execute(sql)
        con.commit()
        con.close()


@unittest.skipUnless(os.path.exists(PG_INITDB), "PostgreSQL 15 is not installed")
class PostgreSQL(UsersMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, PG_TEST_OPTS="-c fsync=off")
        cls.pg = subprocess.Popen([os.path.join(SOURCE_DIR, "scripts", "pg-test-server")], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        cls.url = None
        for raw in cls.pg.stdout:
            line = raw.decode().strip()
            if line.startswith("DATABASE_URL="):
                cls.url = line.split("=", 1)[1]
                break
        assert cls.url, "pg-test-server did not start"

    @classmethod
    def tearDownClass(cls):
        os.killpg(cls.pg.pid, signal.SIGTERM)
        cls.pg.wait(60)
        cls.pg.stdout.close()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clarity-users-pg-")
        self.env = {"DATABASE_URL": self.url, "HOME": self.dir, "PASSWORD_HASH_PROFILE": "interactive"}
        self.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        code, _, err = run_cli(["migrate", "up"], env=self.env, cwd=self.dir)
        self.assertEqual(code, 0, err)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql):
        p = subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def db_rows(self, sql):
        out = []
        for line in self.psql(sql).splitlines():
            out.append(tuple(int(v) if v.lstrip("-").isdigit() else v for v in line.split("\t")))
        return out

    def db_exec(self, sql):
        self.psql(sql)


if __name__ == "__main__":
    unittest.main(verbosity=2)
