"""End-to-end identity: register, login, me, refresh rotation and reuse
detection, logout, lockout, rate limits, erasure, and every protected route
refusing bad tokens — over the real binary."""
import json
import re
import time
import unittest
import uuid

from harness import Server, production_keys, run_cli
from tokens import Signer, alg_none, tamper

PASSWORD = "Correct-Horse-9"


def register(srv, email, password=PASSWORD, **extra):
    body = {"email": email, "password": password, "first_name": "Ada", "last_name": "Lovelace",
            "terms_accepted": True, "privacy_policy_accepted": True}
    body.update(extra)
    return srv.json("POST", "/api/v1/auth/register", body=json.dumps(body),
                    headers={"Content-Type": "application/json"})


def login(srv, email, password=PASSWORD, **extra):
    body = {"email": email, "password": password}
    body.update(extra)
    return srv.json("POST", "/api/v1/auth/login", body=json.dumps(body),
                    headers={"Content-Type": "application/json"})


def post(srv, path, obj, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    return srv.json("POST", path, body=json.dumps(obj), headers=headers)


def bearer(token):
    return {"Authorization": "Bearer " + token}


class Accounts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        keys = production_keys()
        cls.signer = Signer(keys["JWT_PRIVATE_KEY"])
        cls.srv = Server(env={"JWT_PRIVATE_KEY": keys["JWT_PRIVATE_KEY"], "RATE_LIMITS": "auth=1000/60"})

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.signer.close()

    def test_full_flow(self):
        email = "flow-%s@example.com" % uuid.uuid4().hex[:8]
        status, _, doc = register(self.srv, email.upper())
        self.assertEqual(status, 201, doc)
        self.assertEqual(doc["email"], email)  # stored lower-case
        self.assertEqual(doc["status"], "active")
        user_id = doc["user_id"]
        self.assertRegex(user_id, r"^[0-9a-f-]{36}$")

        status, _, doc = login(self.srv, email, remember_me=True, device_info={"model": "iPhone"})
        self.assertEqual(status, 200, doc)
        tokens = doc["tokens"]
        self.assertEqual(tokens["token_type"], "bearer")
        self.assertEqual(tokens["expires_in"], 3600)
        self.assertEqual(doc["user"]["user_id"], user_id)
        self.assertEqual(doc["user"]["role"], "patient")

        status, _, me = self.srv.json("GET", "/api/v1/auth/me", headers=bearer(tokens["access_token"]))
        self.assertEqual(status, 200, me)
        self.assertEqual(me["email"], email)
        self.assertIn("read:own_data", me["permissions"])
        self.assertIsNotNone(me["last_login"])

        # Refresh rotates: a new pair, and the old refresh token is spent.
        status, _, t2 = post(self.srv, "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        self.assertEqual(status, 200, t2)
        self.assertNotEqual(t2["refresh_token"], tokens["refresh_token"])
        status, _, me = self.srv.json("GET", "/api/v1/auth/me", headers=bearer(t2["access_token"]))
        self.assertEqual(status, 200)

        # Reusing the rotated token revokes the whole family, including t2's.
        status, _, doc = post(self.srv, "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        self.assertEqual(status, 401, doc)
        status, _, doc = post(self.srv, "/api/v1/auth/refresh", {"refresh_token": t2["refresh_token"]})
        self.assertEqual(status, 401, doc)

        # A new login, then logout ends it.
        status, _, doc = login(self.srv, email)
        rt = doc["tokens"]["refresh_token"]
        status, _, doc = post(self.srv, "/api/v1/auth/logout", {"refresh_token": rt})
        self.assertEqual(status, 200)
        status, _, doc = post(self.srv, "/api/v1/auth/refresh", {"refresh_token": rt})
        self.assertEqual(status, 401)

        # t2's access token died with its family (revocation bites).
        self.assertEqual(self.srv.json("GET", "/api/v1/auth/me", headers=bearer(t2["access_token"]))[0], 401)

        # The audit trail shows the events, never secrets.
        status, _, doc = login(self.srv, email)
        status, _, audit = self.srv.json("GET", "/api/v1/auth/me/audit?limit=100",
                                         headers=bearer(doc["access_token"]))
        self.assertEqual(status, 200, audit)
        actions = [a["action"] for a in audit["data"]]
        for a in ("auth.register", "auth.login", "auth.refresh", "auth.refresh_reuse", "auth.logout"):
            self.assertIn(a, actions)
        self.assertNotIn(PASSWORD, json.dumps(audit))
        self.assertNotIn(PASSWORD, self.srv.text())
        self.assertNotIn(tokens["refresh_token"], self.srv.text())

    def test_wrong_password_and_unknown_email_look_the_same(self):
        email = "same-%s@example.com" % uuid.uuid4().hex[:8]
        register(self.srv, email)
        s1, h1, d1 = login(self.srv, email, "Wrong-Password-1")
        s2, h2, d2 = login(self.srv, "nobody-%s@example.com" % uuid.uuid4().hex[:8], "Wrong-Password-1")
        self.assertEqual((s1, s2), (401, 401))
        self.assertEqual(d1["detail"], d2["detail"])
        self.assertEqual(d1["type"], "https://clarity.dev/problems/authentication-required")

    def test_duplicate_email(self):
        email = "dup-%s@example.com" % uuid.uuid4().hex[:8]
        self.assertEqual(register(self.srv, email)[0], 201)
        status, _, doc = register(self.srv, email)
        self.assertEqual(status, 409)
        self.assertEqual(doc["type"], "https://clarity.dev/problems/resource-conflict")

    def test_validation_lists_every_error(self):
        status, _, doc = register(self.srv, "not-an-email", password="short", first_name="",
                                  last_name="x" * 51, terms_accepted=False, privacy_policy_accepted="yes",
                                  phone_number="12", favourite_colour="blue")
        self.assertEqual(status, 422, doc)
        pointers = {e["pointer"]: e["message"] for e in doc["errors"]}
        for p in ("/email", "/password", "/first_name", "/last_name", "/terms_accepted",
                  "/privacy_policy_accepted", "/phone_number"):
            self.assertIn(p, pointers, doc)
        # Unknown members are ignored (docs/api.md "Rules for clients").
        self.assertNotIn("/favourite_colour", pointers)

    def test_password_policy(self):
        for pw, why in (("alllowercase1!", "upper-case"), ("ALLUPPERCASE1!", "lower-case"),
                        ("NoDigitsHere!", "digit"), ("NoSpecial123", "one of"), ("Sh0rt!", "at least 8"),
                        ("A1!" + "a" * 126, "at most 128")):
            status, _, doc = register(self.srv, "pw-%s@example.com" % uuid.uuid4().hex[:8], password=pw)
            self.assertEqual(status, 422, pw)
            msg = {e["pointer"]: e["message"] for e in doc["errors"]}["/password"]
            self.assertIn(why, msg)

    def test_bad_bodies(self):
        status, hdrs, doc = self.srv.json("POST", "/api/v1/auth/login", body="{",
                                          headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertEqual(hdrs["content-type"], "application/problem+json")
        status, _, doc = self.srv.json("POST", "/api/v1/auth/login", body="{}", headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _, doc = self.srv.json("POST", "/api/v1/auth/login", body="[1]",
                                       headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        status, _, doc = self.srv.json("POST", "/api/v1/auth/login", body='{"email":"a@b.co","email":"c@d.co"}',
                                       headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)

    def test_delete_me_erases(self):
        email = "erase-%s@example.com" % uuid.uuid4().hex[:8]
        register(self.srv, email)
        _, _, doc = login(self.srv, email)
        access = doc["tokens"]["access_token"]
        status, _, doc = self.srv.json("DELETE", "/api/v1/auth/me", headers=bearer(access))
        self.assertEqual(status, 200, doc)
        # The erased account's tokens are revoked with it.
        self.assertEqual(self.srv.json("GET", "/api/v1/auth/me", headers=bearer(access))[0], 401)
        self.assertEqual(login(self.srv, email)[0], 401)
        # The email is free again.
        self.assertEqual(register(self.srv, email)[0], 201)

    def test_admin_audit_requires_admin(self):
        email = "pat-%s@example.com" % uuid.uuid4().hex[:8]
        _, _, reg = register(self.srv, email)
        _, _, doc = login(self.srv, email)
        access = doc["tokens"]["access_token"]
        status, _, doc = self.srv.json("GET", "/api/v1/audit?user_id=" + reg["user_id"], headers=bearer(access))
        self.assertEqual(status, 403)
        admin = self.signer.token(sub=str(uuid.uuid4()), role="admin")
        status, _, doc = self.srv.json("GET", "/api/v1/audit?user_id=" + reg["user_id"], headers=bearer(admin))
        self.assertEqual(status, 200, doc)
        self.assertIn("auth.login", [a["action"] for a in doc["data"]])

    def test_every_protected_route_refuses_bad_tokens(self):
        rc, out, err = run_cli(["routes"])
        self.assertEqual(rc, 0, err)
        routes = json.loads(out)
        protected = [r for r in routes if r["auth"]]
        self.assertGreater(len(protected), 3)
        sub = str(uuid.uuid4())
        now = int(time.time())
        other = Signer(production_keys()["JWT_PRIVATE_KEY"])
        bad = {
            "missing": None,
            "garbage": "not.a.token",
            "expired": self.signer.token(sub=sub, iat=now - 7200, exp=now - 3600),
            "tampered": tamper(self.signer.token(sub=sub)),
            "alg_none": alg_none(sub, self.signer.kid),
            "wrong_audience": self.signer.token(sub=sub, aud="someone-else"),
            "wrong_issuer": self.signer.token(sub=sub, iss="evil"),
            "foreign_key": other.token(sub=sub),
        }
        other.close()
        for r in protected:
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), r["path"])
            for name, tok in bad.items():
                headers = {"Content-Type": "application/json"}
                if tok:
                    headers["Authorization"] = "Bearer " + tok
                status, hdrs, doc = self.srv.json(r["method"], path, body="{}" if r["method"] != "GET" else None,
                                                  headers=headers)
                self.assertEqual(status, 401, "%s %s with %s token: %s" % (r["method"], path, name, doc))
                self.assertIn("Bearer", hdrs.get("www-authenticate", ""))
        # Other-user: a path naming another user's id is refused.
        for r in protected:
            if "{user_id}" not in r["path"]:
                continue
            path = r["path"].replace("{user_id}", str(uuid.uuid4()))
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            status, _, doc = self.srv.json(r["method"], path, headers=bearer(self.signer.token(sub=sub)))
            self.assertEqual(status, 403, "%s %s: %s" % (r["method"], path, doc))


class ExternalIdentity(unittest.TestCase):
    """Firebase-style RS256 ID tokens verified against a JWKS file."""

    def test_firebase_token(self):
        import base64
        import os
        import subprocess
        import tempfile
        from tokens import b64url
        d = tempfile.mkdtemp()
        key = os.path.join(d, "rsa.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                       check=True, capture_output=True)
        mod = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                             capture_output=True).stdout.decode().strip().split("=", 1)[1]
        n = bytes.fromhex(mod)
        jwks = {"keys": [{"kty": "RSA", "kid": "fb-key-1", "use": "sig", "alg": "RS256",
                          "n": b64url(n), "e": b64url((65537).to_bytes(3, "big"))}]}
        path = os.path.join(d, "jwks.json")
        with open(path, "w") as f:
            json.dump(jwks, f)

        def rs256(claims, kid="fb-key-1"):
            h = b64url(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
            p = b64url(json.dumps(claims).encode())
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=(h + "." + p).encode(),
                                 check=True, capture_output=True).stdout
            return h + "." + p + "." + b64url(sig)

        srv = Server(env={"FIREBASE_PROJECT_ID": "clarity-test", "OIDC_JWKS_FILE": path})
        try:
            now = int(time.time())
            claims = {"iss": "https://securetoken.google.com/clarity-test", "aud": "clarity-test",
                      "sub": "firebase-uid-42", "email": "Fire@Example.com", "email_verified": True, "iat": now, "exp": now + 3600,
                      "auth_time": now - 5}
            status, _, me = srv.json("GET", "/api/v1/auth/me", headers=bearer(rs256(claims)))
            self.assertEqual(status, 200, me)
            self.assertEqual(me["email"], "fire@example.com")
            first_id = me["user_id"]
            # The same identity maps to the same local user.
            status, _, me = srv.json("GET", "/api/v1/auth/me", headers=bearer(rs256(claims)))
            self.assertEqual(me["user_id"], first_id)
            for bad in (dict(claims, aud="other-project"), dict(claims, iss="https://evil.example.com"),
                        dict(claims, exp=now - 3600), dict(claims, auth_time=now + 3600), dict(claims, sub="")):
                status, _, doc = srv.json("GET", "/api/v1/auth/me", headers=bearer(rs256(bad)))
                self.assertEqual(status, 401, (bad, doc))
            status, _, doc = srv.json("GET", "/api/v1/auth/me", headers=bearer(rs256(claims, kid="unknown")))
            self.assertEqual(status, 401)
        finally:
            srv.stop()
            import shutil
            shutil.rmtree(d, ignore_errors=True)


class Throttles(unittest.TestCase):
    def test_lockout_and_unlock(self):
        srv = Server(env={"LOCKOUT_THRESHOLD": "3", "LOCKOUT_WINDOW_SECONDS": "60", "LOCKOUT_SECONDS": "2",
                          "RATE_LIMITS": "auth=1000/60"})
        try:
            email = "lock-%s@example.com" % uuid.uuid4().hex[:8]
            register(srv, email)
            for _ in range(3):
                self.assertEqual(login(srv, email, "Wrong-Password-1")[0], 401)
            status, hdrs, doc = login(srv, email)  # even the right password
            self.assertEqual(status, 423, doc)
            self.assertEqual(doc["type"], "https://clarity.dev/problems/account-locked")
            self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
            time.sleep(2.2)
            self.assertEqual(login(srv, email)[0], 200)
        finally:
            srv.stop()

    def test_rate_limit_and_recovery(self):
        # One token per 5 s. Refresh with an unknown token is cheap (no
        # Argon2), so four requests land well within one refill period.
        srv = Server(env={"RATE_LIMITS": "auth=3/15"})
        try:
            def attempt():
                return post(srv, "/api/v1/auth/refresh", {"refresh_token": "unknown"})
            results = [attempt() for _ in range(4)]
            self.assertEqual([r[0] for r in results[:3]], [401, 401, 401])
            status, hdrs, doc = results[3]
            self.assertEqual(status, 429, doc)
            self.assertEqual(doc["type"], "https://clarity.dev/problems/rate-limit-exceeded")
            self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
            self.assertEqual(hdrs["ratelimit-limit"], "3")
            self.assertEqual(hdrs["ratelimit-remaining"], "0")
            time.sleep(int(hdrs["retry-after"]) + 0.2)
            self.assertEqual(attempt()[0], 401)
            # Probes are never limited.
            for _ in range(20):
                self.assertEqual(srv.request("GET", "/liveness")[0], 200)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
