"""OIDC sign-in in the real browser (issue 20): the sign-in page shows a
"Sign in with <provider>" button for the configured provider; a click goes
through the fake provider (fake_idp.py, on another site: localhost vs
127.0.0.1) and back and ends signed in — the page's access token from the
cookie refresh, the refresh token an HttpOnly SameSite=Strict cookie, nothing
token-like in localStorage/sessionStorage, no console error, no failed
request, no request to anywhere but Clarity and the provider; a reload stays
signed in. A person who declines at the provider is back on the sign-in page
with the reason shown. axe-core: no serious or critical violation on either
page. Needs `scripts/install-deps --browser` (else reported skipped, like
test_web_app.py)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import BIN, Server
from fake_idp import FakeIdp
from test_web_app import CHROMIUM, LIMITS, NPM, browser_missing


@unittest.skipIf(browser_missing() is not None, "needs %s" % browser_missing())
class WebOidcInBrowser(unittest.TestCase):
    def test_sign_in_with_provider_and_declined(self):
        idp = FakeIdp(host="localhost")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        base = "http://127.0.0.1:%d" % port
        env = dict(LIMITS, PORT=str(port), OIDC_REDIRECT_BASE=base,
                   OIDC_PROVIDERS=json.dumps([idp.provider_config(label="Test IdP")]))
        srv = Server(env=env)
        tmp = tempfile.mkdtemp(prefix="clarity-web-oidc-")
        try:
            artifacts = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artifacts")
            os.makedirs(artifacts, exist_ok=True)
            penv = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(NPM, "playwright-core"),
                        AXE_CORE=os.path.join(NPM, "axe-core"), CHROMIUM=CHROMIUM, BASE_URL=base,
                        IDP_URL=idp.issuer, ARTIFACTS=artifacts, HOME=tmp)
            p = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "web_oidc_browser.js")],
                               env=penv, capture_output=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-4000:])
            out = json.loads(p.stdout.decode().strip().splitlines()[-1])
            with open(os.path.join(artifacts, "web-oidc-result.json"), "w") as f:
                json.dump(out, f, indent=1)
            log = srv.text()
        finally:
            srv.stop()
            idp.close()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(out["problems"], [], "console errors, failed requests or HTTP errors")
        self.assertEqual(out["outside"], [], "requests to neither Clarity nor the provider")
        self.assertEqual(idp.problems, [])
        self.assertEqual(out["button"], "Sign in with Test IdP")
        self.assertEqual(out["axe_signin"], [])
        # Signed in: through the provider and back, then the cookie refresh.
        self.assertIn("/authorize", out["idp_requests"])
        self.assertTrue(out["final_url"].startswith(base + "/#/overview"), out["final_url"])
        self.assertIn("Sign out", out["signed_in_text"])
        for call in ("GET /api/v1/auth/oidc/test/start 302", "GET /api/v1/auth/oidc/test/callback 303",
                     "POST /api/v1/auth/refresh 200", "GET /api/v1/auth/me 200"):
            self.assertIn(call, out["auth_calls"])
        ck = {c["name"]: c for c in out["cookies"]}
        self.assertIn("clarity_refresh", ck)
        self.assertNotIn("clarity_oidc", ck, "the browser binding cookie is cleared once used")
        r = ck["clarity_refresh"]
        self.assertEqual((r["httpOnly"], r["secure"], r["sameSite"], r["path"]), (True, True, "Strict", "/api/v1/auth"))
        self.assertEqual(out["document_cookie"], "")
        for k, v in out["storage"].items():
            self.assertTrue(len(v) < 16 and "." not in v, "token-like storage %s=%s" % (k, v))
        self.assertTrue(out["after_reload"].startswith(base + "/#/overview"), out["after_reload"])
        # Declined: back on the sign-in page, the reason shown, no session.
        self.assertIn("#/signin?error=access_denied", out["denied_url"])
        self.assertIn("cancelled", out["denied_text"])
        self.assertEqual(out["axe_denied"], [])
        self.assertNotIn("clarity_refresh", out["cookies_denied"])
        self.assertEqual(out["storage_denied"], {})
        self.assertIn("OIDC sign-in refused", log)


if __name__ == "__main__":
    unittest.main()
