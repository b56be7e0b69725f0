"""Browser sign-in with an OIDC provider (issue 20), over HTTP against the real
binary and a fake provider on loopback (fake_idp.py): the authorization-code
flow with PKCE done by the server, redirects followed by hand, cookies kept by
hand. The full flow ends in the same refresh cookie as password sign-in; bad,
missing and replayed state, a foreign browser, a wrong nonce, audience or
expiry, an unverified e-mail of a password account, a token endpoint that is
down, slow or refuses the code, and a person who declines are each refused
with a redirect to the page carrying an error code — never a 5xx — and an
audit row; no code, token or verifier reaches the log."""
import json
import os
import time
import unittest
import urllib.parse
import http.client

from harness import Server, run_cli
from fake_idp import FakeIdp

LIMITS = {"RATE_LIMITS": "auth=1000/60,api=100000/60"}
PASSWORD = "Correct-Horse-9!battery"


def get(url, headers=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, r.getheaders(), body
    finally:
        c.close()


def header(hs, name):
    return [v for k, v in hs if k.lower() == name.lower()]


def cookie_of(hs, name):
    for v in header(hs, "Set-Cookie"):
        if v.startswith(name + "="):
            return v
    return None


class OidcFlow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.idp = FakeIdp()
        env = dict(LIMITS)
        idp = cls.idp.issuer
        env["OIDC_PROVIDERS"] = json.dumps([
            cls.idp.provider_config(),
            # Explicit endpoints (no discovery); the token endpoint's port is closed.
            cls.idp.provider_config(name="dead", label="Dead token endpoint", authorization_endpoint=idp + "/authorize",
                                    token_endpoint="http://127.0.0.1:1/token", jwks_url=idp + "/jwks"),
            # Discovery fails: nothing listens at the issuer.
            dict(cls.idp.provider_config(name="gone", label="Gone"), issuer="http://127.0.0.1:1"),
        ])
        cls.srv = Server(env=env, start=False)
        cls.base = None
        # The redirect URI names this server's origin: known once it listens,
        # so pick a port first.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        cls.srv.env["PORT"] = str(port)
        cls.srv.env["OIDC_REDIRECT_BASE"] = "http://127.0.0.1:%d" % port
        cls.srv.start()
        cls.base = "http://127.0.0.1:%d" % cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.idp.close()

    def setUp(self):
        self.idp.deny = False
        self.idp.claims = {}
        self.idp.token_mode = "ok"

    # ---- helpers -------------------------------------------------------

    def start(self, name="test"):
        st, hs, _ = get(self.base + "/api/v1/auth/oidc/%s/start" % name)
        self.assertEqual(st, 302)
        loc = header(hs, "Location")[0]
        bind = cookie_of(hs, "clarity_oidc")
        self.assertIsNotNone(bind)
        return loc, bind.split(";")[0]

    def authorize(self, loc):
        st, hs, body = get(loc)
        self.assertEqual(st, 302, body)
        return header(hs, "Location")[0]

    def callback(self, cb, cookie):
        u = urllib.parse.urlsplit(cb)
        self.assertEqual("%s://%s" % (u.scheme, u.netloc), self.base)
        t0 = time.time()
        st, hs, body = get(cb, {"Cookie": cookie} if cookie else {})
        self.assertLess(st, 500, body)
        return st, hs, time.time() - t0

    def sign_in(self):
        loc, cookie = self.start()
        cb = self.authorize(loc)
        st, hs, _ = self.callback(cb, cookie)
        return st, header(hs, "Location")[0], cookie_of(hs, "clarity_refresh"), cb

    def me_with_cookie(self, refresh_cookie):
        c = refresh_cookie.split(";")[0]
        st, _, body = self.srv.json("POST", "/api/v1/auth/refresh", "{}", {
            "Content-Type": "application/json", "Cookie": c, "X-Clarity-Client": "web", "X-Clarity-CSRF": "1"})
        self.assertEqual(st, 200, body)
        self.assertNotIn("refresh_token", body)
        st, _, me = self.srv.json("GET", "/api/v1/auth/me", None, {"Authorization": "Bearer " + body["access_token"]})
        self.assertEqual(st, 200, me)
        self.token = body["access_token"]
        return me

    def expect_error(self, code, cb, cookie):
        st, hs, secs = self.callback(cb, cookie)
        self.assertEqual(st, 303)
        self.assertEqual(header(hs, "Location")[0], "/#/signin?error=" + code)
        self.assertIsNone(cookie_of(hs, "clarity_refresh"))
        return secs

    def wait_log(self, text, deadline_s=20):
        t0 = time.time()
        while text not in self.srv.text():
            self.assertLess(time.time() - t0, deadline_s, "no log line with " + text)
            time.sleep(0.05)

    # ---- tests ----------------------------------------------------------

    def test_providers_listed(self):
        st, _, body = self.srv.json("GET", "/api/v1/auth/providers")
        self.assertEqual(st, 200)
        self.assertEqual(body["providers"][0], {"id": "test", "name": "Test IdP",
                                                "start_url": "/api/v1/auth/oidc/test/start"})
        self.assertEqual([p["id"] for p in body["providers"]], ["test", "dead", "gone"])
        st, hs, body = self.srv.json("GET", "/api/v1/auth/oidc/nope/start")
        self.assertEqual(st, 404)
        self.assertEqual(hs["content-type"], "application/problem+json")

    def test_full_flow_creates_links_and_signs_in(self):
        self.idp.claims = {"sub": "alice-sub", "email": "Alice.OIDC@example.org", "email_verified": True}
        loc, cookie = self.start()
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
        self.assertTrue(loc.startswith(self.idp.issuer + "/authorize?"))
        self.assertEqual(q["code_challenge_method"], "S256")
        self.assertEqual(q["redirect_uri"], self.base + "/api/v1/auth/oidc/test/callback")
        self.assertEqual(q["scope"], "openid email profile")
        self.assertEqual(len(q["state"]), 43)
        self.assertEqual(len(q["nonce"]), 43)
        self.assertIn("HttpOnly", cookie_of_raw(self, loc, cookie))
        cb = self.authorize(loc)
        st, hs, _ = self.callback(cb, cookie)
        self.assertEqual(st, 303)
        self.assertEqual(header(hs, "Location")[0], "/#/signed-in")
        rc = cookie_of(hs, "clarity_refresh")
        self.assertIsNotNone(rc)
        for attr in ("Path=/api/v1/auth", "HttpOnly", "Secure", "SameSite=Strict"):
            self.assertIn(attr, rc)
        self.assertIn("Max-Age=0", cookie_of(hs, "clarity_oidc"))  # the binding, used up
        self.assertEqual(self.idp.problems, [])
        # The provider saw a PKCE verifier matching the challenge and Basic auth.
        tr = self.idp.token_requests[-1]
        self.assertTrue(tr["authorization"].startswith("Basic "))
        self.assertEqual(len(tr["form"]["code_verifier"]), 43)
        me = self.me_with_cookie(rc)
        self.assertEqual(me["email"], "alice.oidc@example.org")
        # Again: the same (issuer, subject) is the same account.
        st, loc2, rc2, _ = self.sign_in()
        self.assertEqual(loc2, "/#/signed-in")
        self.assertEqual(self.me_with_cookie(rc2)["user_id"], me["user_id"])
        st, _, audit = self.srv.json("GET", "/api/v1/auth/me/audit", None, {"Authorization": "Bearer " + self.token})
        self.assertEqual(st, 200)
        self.assertIn(("auth.oidc_login", "success"),
                      [(a.get("action"), a.get("outcome")) for a in audit["data"]], audit)
        # Replayed callback: the state was single use.
        self.expect_error("invalid_state", cb, cookie)
        # No code, state, verifier or token in the log; audit rows written.
        text = self.srv.text()
        for secret in (q["state"], q["nonce"], tr["form"]["code"], tr["form"]["code_verifier"],
                       rc.split(";")[0].split("=", 1)[1]):
            self.assertNotIn(secret, text)
        self.assertIn("OIDC sign-in", text)

    def test_missing_bad_foreign_state(self):
        loc, cookie = self.start()
        cb = self.authorize(loc)
        u = urllib.parse.urlsplit(cb)
        q = dict(urllib.parse.parse_qsl(u.query))
        base_cb = self.base + u.path
        # No state at all, a made-up one, the right one from another browser.
        self.expect_error("invalid_state", base_cb + "?" + urllib.parse.urlencode({"code": q["code"]}), cookie)
        self.expect_error("invalid_state", base_cb + "?" + urllib.parse.urlencode(
            {"code": q["code"], "state": "A" * 43}), cookie)
        self.expect_error("invalid_state", cb, "clarity_oidc=" + "B" * 43)
        # That try spent the state: the right browser is now refused too.
        self.expect_error("invalid_state", cb, cookie)
        # A state started for one flow cannot be used without the cookie.
        loc, cookie = self.start()
        self.expect_error("invalid_state", self.authorize(loc), None)

    def test_start_from_another_site_refused(self):
        # Fetch Metadata: another site cannot make a browser start flows
        # (spending its address's share, overwriting its binding cookie).
        st, hs, _ = get(self.base + "/api/v1/auth/oidc/test/start", {"Sec-Fetch-Site": "cross-site"})
        self.assertEqual(st, 303)
        self.assertEqual(header(hs, "Location")[0], "/#/signin?error=cross_site")
        self.assertFalse((cookie_of(hs, "clarity_oidc") or "clarity_oidc=;").split(";")[0].split("=", 1)[1])
        for site in ("same-origin", "none"):
            st, hs, _ = get(self.base + "/api/v1/auth/oidc/test/start", {"Sec-Fetch-Site": site})
            self.assertEqual(st, 302, site)

    def test_wrong_nonce_audience_expiry(self):
        cid = self.idp.provider_config()["client_id"]
        # Several audiences need azp naming this client (OIDC Core 3.1.3.7);
        # a nonce too long to hold is no nonce.
        for claims in ({"nonce": "not-the-flows-nonce"}, {"aud": "someone-else"},
                       {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
                       {"aud": [cid, "another-client"]}, {"nonce": "n" * 300}):
            with self.subTest(claims=claims):
                self.idp.claims = dict(claims, sub="bad-" + list(claims)[0])
                loc, cookie = self.start()
                self.expect_error("invalid_token", self.authorize(loc), cookie)
        for why in ("wrong nonce", "wrong audience", "token expired"):
            self.wait_log(why)

    def test_no_takeover_of_a_password_account(self):
        email = "owner-%d@example.org" % int(time.time() * 1000)
        st, _, _ = self.srv.json("POST", "/api/v1/auth/register", json.dumps({
            "email": email, "password": PASSWORD, "first_name": "O", "last_name": "W", "terms_accepted": True,
            "privacy_policy_accepted": True}), {"Content-Type": "application/json"})
        self.assertEqual(st, 201)
        st, _, body = self.srv.json("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": PASSWORD}),
                                    {"Content-Type": "application/json"})
        owner = body["user"]["user_id"]
        for verified in (False, True):
            with self.subTest(email_verified=verified):
                self.idp.claims = {"sub": "attacker-%s" % verified, "email": email, "email_verified": verified}
                st, loc, rc, _ = self.sign_in()
                self.assertEqual(loc, "/#/signed-in")
                me = self.me_with_cookie(rc)
                self.assertNotEqual(me["user_id"], owner)
                self.assertNotEqual(me["email"], email)
                self.assertEqual(me["role"], "patient")

    def test_token_endpoint_down_slow_refusing(self):
        self.idp.token_mode = "down"
        loc, cookie = self.start()
        self.expect_error("provider_unavailable", self.authorize(loc), cookie)
        self.idp.token_mode = "invalid_grant"
        loc, cookie = self.start()
        self.expect_error("token_rejected", self.authorize(loc), cookie)
        self.idp.token_mode = "slow"
        self.idp.slow_s = 9
        loc, cookie = self.start()
        secs = self.expect_error("provider_unavailable", self.authorize(loc), cookie)
        self.assertLess(secs, 8.5, "the token call is bounded (5 s)")
        self.wait_log("Timeout was reached")
        # Nothing listens at the token endpoint (explicit endpoints, no discovery).
        self.idp.token_mode = "ok"
        loc, cookie = self.start("dead")
        self.assertTrue(loc.startswith(self.idp.issuer + "/authorize?"))
        cb = self.authorize(loc)
        self.assertIn("/api/v1/auth/oidc/dead/callback?", cb)
        self.expect_error("provider_unavailable", cb, cookie)

    def test_discovery_unreachable(self):
        t0 = time.time()
        st, hs, body = get(self.base + "/api/v1/auth/oidc/gone/start")
        self.assertEqual(st, 303, body)
        self.assertEqual(header(hs, "Location")[0], "/#/signin?error=provider_unavailable")
        self.assertLess(time.time() - t0, 6)
        self.wait_log("OIDC provider discovery failed")

    def test_person_declines(self):
        self.idp.deny = True
        loc, cookie = self.start()
        self.expect_error("access_denied", self.authorize(loc), cookie)
        # Also a callback with an error and no state at all.
        self.expect_error("access_denied", self.base + "/api/v1/auth/oidc/test/callback?error=access_denied", None)
        self.expect_error("provider_error", self.base + "/api/v1/auth/oidc/test/callback?error=%3Cscript%3E", None)


def cookie_of_raw(test, loc, cookie):
    """The binding cookie's attributes, from a fresh start."""
    st, hs, _ = get(test.base + "/api/v1/auth/oidc/test/start")
    raw = cookie_of(hs, "clarity_oidc")
    for attr in ("Path=/api/v1/auth/oidc", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=600"):
        test.assertIn(attr, raw)
    return raw


class OidcUnconfiguredAndConfig(unittest.TestCase):
    def test_nothing_enabled_unless_configured(self):
        srv = Server(env=LIMITS)
        try:
            st, _, body = srv.json("GET", "/api/v1/auth/providers")
            self.assertEqual((st, body), (200, {"providers": []}))
            st, _, body = srv.json("GET", "/api/v1/auth/oidc/google/start")
            self.assertEqual(st, 404)
        finally:
            srv.stop()

    def test_bad_configurations_refused_clearly(self):
        p = {"name": "x", "issuer": "https://idp.example.org", "client_id": "c"}
        cases = [
            ({"OIDC_PROVIDERS": json.dumps([p])}, "OIDC_REDIRECT_BASE"),
            ({"OIDC_REDIRECT_BASE": "https://c.example.org"}, "OIDC_PROVIDERS"),
            ({"OIDC_PROVIDERS": json.dumps([dict(p, issuer="http://idp.example.org")])}, "issuer must be an https"),
            ({"OIDC_PROVIDERS": json.dumps([dict(p, scopes=["email"])])}, "openid"),
            ({"OIDC_PROVIDERS": json.dumps([dict(p, colour="red")])}, "unknown member"),
            ({"OIDC_PROVIDERS": json.dumps([dict(p, name="Bad Name")])}, "name must be"),
            ({"OIDC_PROVIDERS": json.dumps([p, p])}, "configured twice"),
            ({"OIDC_PROVIDERS": json.dumps([dict(p, authorization_endpoint="https://idp.example.org/a")])},
             "both authorization_endpoint and token_endpoint"),
        ]
        for env, want in cases:
            with self.subTest(want=want):
                e = {"OIDC_REDIRECT_BASE": "https://c.example.org"} if "OIDC_REDIRECT_BASE" not in env and \
                    want != "OIDC_REDIRECT_BASE" else {}
                e.update(env)
                code, _, err = run_cli(["config", "check"], env=e)
                self.assertNotEqual(code, 0)
                self.assertIn(want, err)
        code, _, err = run_cli(["config", "check"], env={"OIDC_PROVIDERS": json.dumps([p]),
                                                         "OIDC_REDIRECT_BASE": "https://c.example.org/"})
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()
