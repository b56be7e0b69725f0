"""The web app (issue 20).

Over HTTP (always): / and /app/* are served from the binary with a strict
CSP and ETags (304 on revalidation), WEB_APP_ENABLED=false turns them off,
the refresh cookie is HttpOnly, Secure, SameSite=Strict and scoped to
/api/v1/auth, a cookie-authenticated refresh without the CSRF header or from
another origin is refused (403) and changes nothing, and the view endpoints
(/api/v1/series, /rhythm, /sleep/nights, /uploads, /analyses) answer for the
caller's own data only.

In a real browser (needs `scripts/install-deps --browser`: Debian chromium,
npm playwright-core and axe-core; otherwise that test reports itself
skipped): web_app_browser.js signs up, drops a generated Apple Health export
(upload throttled so the progress bar moves), waits for the analysis and the
insight, visits every view at 1280 and 390 px (screenshots under
test-artifacts/ beside the binary, axe-core in the page: no serious or
critical violation), asks the chat, exports NDJSON and CSV, deletes the
upload and erases the account — with no console error, no failed request
and no request leaving the server.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime, timedelta, timezone

from harness import BIN, Server
import web_fixture

SRC = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NPM = os.path.join(SRC, "build", "swagger-ui", "node_modules")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LIMITS = {"RATE_LIMITS": "auth=1000/60,upload=1000/60,api=100000/60,insights=1000/60,chat=1000/60"}
PASSWORD = "Correct-Horse-9!battery"
# The targets are 1 s for the first view and 300 ms per chart; they
# are measured by bench/web_bench.py. Here, on a shared machine under load
# (load averages of 15-20 on 2 cores were seen), a regression is what fails:
# several times the target.
FIRST_VIEW_MS = float(os.environ.get("WEB_FIRST_VIEW_MS", "3000"))
CHART_MS = float(os.environ.get("WEB_CHART_MS", "1500"))


def browser_missing():
    if shutil.which("node") is None:
        return "node"
    for mod in ("playwright-core", "axe-core"):
        if not os.path.isfile(os.path.join(NPM, mod, "package.json")):
            return mod + " (scripts/install-deps --browser)"
    if not os.access(CHROMIUM, os.X_OK):
        return "chromium (scripts/install-deps --browser)"
    return None


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def register_login(srv, email, web=True):
    body = {"email": email, "password": PASSWORD, "first_name": "T", "last_name": "U", "terms_accepted": True,
            "privacy_policy_accepted": True}
    st, _, _ = srv.json("POST", "/api/v1/auth/register", json.dumps(body), {"Content-Type": "application/json"})
    assert st == 201, st
    h = {"Content-Type": "application/json"}
    if web:
        h["X-Clarity-Client"] = "web"
    return srv.request("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": PASSWORD}), h)


class WebOverHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env=LIMITS)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_app_served_with_csp_and_etag(self):
        st, h, body = self.srv.request("GET", "/")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/html"))
        csp = h["content-security-policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertNotIn(b"<script>", body)  # no inline script
        self.assertNotIn(b"http", body.replace(b"http-equiv", b""))  # nothing from elsewhere
        for path in ("/", "/app/app.js", "/app/app.css", "/app/icon.svg"):
            st, h, body = self.srv.request("GET", path)
            self.assertEqual(st, 200, path)
            etag = h["etag"]
            st2, h2, body2 = self.srv.request("GET", path, headers={"If-None-Match": etag})
            self.assertEqual((st2, body2), (304, b""), path)
            self.assertEqual(h2["etag"], etag)
        st, _, _ = self.srv.request("GET", "/app/nothing.js")
        self.assertEqual(st, 404)
        st, _, js = self.srv.request("GET", "/app/app.js")
        self.assertNotIn(b"localStorage.setItem('clarity.session', t", js)
        for ext in (b"https://", b"//cdn"):
            self.assertNotIn(ext, js)

    def test_switch_off(self):
        srv = Server(env={"WEB_APP_ENABLED": "false"})
        try:
            for path in ("/", "/app/app.js"):
                st, _, _ = srv.request("GET", path)
                self.assertEqual(st, 404, path)
            st, _, _ = srv.request("GET", "/liveness")
            self.assertEqual(st, 200)
        finally:
            srv.stop()

    def test_refresh_cookie_and_csrf(self):
        st, h, body = register_login(self.srv, "cookie@example.com")
        self.assertEqual(st, 200)
        tokens = json.loads(body)["tokens"]
        self.assertNotIn("refresh_token", tokens)  # only in the cookie
        self.assertEqual(tokens["refresh_token_in"], "cookie")
        cookie = h["set-cookie"]
        attrs = [a.strip() for a in cookie.split(";")]
        self.assertTrue(attrs[0].startswith("clarity_refresh="))
        for a in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/api/v1/auth"):
            self.assertIn(a, attrs)
        jar = attrs[0]
        base = {"Content-Type": "application/json", "Cookie": jar, "X-Clarity-Client": "web"}
        refused = [{}, {"X-Clarity-CSRF": "1", "Origin": "http://evil.example"},
                   {"X-Clarity-CSRF": "1", "Sec-Fetch-Site": "cross-site"}, {"X-Clarity-CSRF": "0"}]
        for extra in refused:
            st, h2, _ = self.srv.request("POST", "/api/v1/auth/refresh", "{}", dict(base, **extra))
            self.assertEqual(st, 403, extra)
            self.assertNotIn("set-cookie", h2)
        # The refused attempts changed nothing: the cookie still refreshes, once.
        ok = dict(base, **{"X-Clarity-CSRF": "1", "Origin": "http://127.0.0.1:%d" % self.srv.port,
                           "Sec-Fetch-Site": "same-origin"})
        st, h3, body = self.srv.request("POST", "/api/v1/auth/refresh", "{}", ok)
        self.assertEqual(st, 200, body)
        self.assertIn("access_token", json.loads(body))
        self.assertNotIn("refresh_token", json.loads(body))
        new_jar = h3["set-cookie"].split(";")[0]
        self.assertNotEqual(new_jar, jar)
        # The rotated cookie is spent: reuse is refused.
        st, _, _ = self.srv.request("POST", "/api/v1/auth/refresh", "{}", dict(ok, Cookie=jar))
        self.assertEqual(st, 401)
        # Logout with the cookie expires it.
        st, h4, _ = self.srv.request("POST", "/api/v1/auth/logout", "{}", dict(ok, Cookie=new_jar))
        self.assertEqual(st, 200)
        self.assertIn("Max-Age=0", h4["set-cookie"])
        # Clients without the header keep the token in the body (unchanged).
        st, h5, body = self.srv.request("POST", "/api/v1/auth/login",
                                        json.dumps({"email": "cookie@example.com", "password": PASSWORD}),
                                        {"Content-Type": "application/json"})
        self.assertEqual(st, 200)
        self.assertIn("refresh_token", json.loads(body)["tokens"])
        self.assertNotIn("set-cookie", h5)

    def test_register_from_the_web_sets_the_cookie(self):
        body = {"email": "webreg@example.com", "password": PASSWORD, "first_name": "T", "last_name": "U",
                "terms_accepted": True, "privacy_policy_accepted": True}
        st, h, raw = self.srv.request("POST", "/api/v1/auth/register", json.dumps(body),
                                      {"Content-Type": "application/json", "X-Clarity-Client": "web"})
        self.assertEqual(st, 201, raw)
        self.assertNotIn(b'"refresh_token"', raw)  # not in the body, flat or nested
        if b"access_token" in raw:  # registration signs in (the iOS app's shape)
            self.assertIn("HttpOnly", h["set-cookie"])
            self.assertTrue(h["set-cookie"].startswith("clarity_refresh="))

    def test_views_of_an_import(self):
        st, _, body = register_login(self.srv, "views@example.com", web=False)
        tok = json.loads(body)["tokens"]["access_token"]
        auth = {"Authorization": "Bearer " + tok}
        end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        data = web_fixture.export_xml(days=10, end=end)
        st, _, imp = self.srv.json("POST", "/api/v1/healthkit/import", data,
                                   dict(auth, **{"Content-Type": "application/xml"}))
        self.assertEqual(st, 202, imp)
        stored_steps = imp["import"]["types"]["HKQuantityTypeIdentifierStepCount"]["samples"]
        frm, to = end - timedelta(days=10), end
        st, _, s = self.srv.json("GET", "/api/v1/series?type=steps&from=%s&to=%s&points=10" % (iso(frm), iso(to)),
                                 headers=auth)
        self.assertEqual(st, 200, s)
        self.assertEqual(s["bucket_seconds"], 86400)
        self.assertEqual(s["samples"], stored_steps)
        self.assertEqual(sum(s["points"]["n"]), stored_steps)
        self.assertEqual(len(s["points"]["t"]), 10)
        # Hand check: the first day's sum is the sum of its StepCount values.
        xml = data.decode()
        day0 = frm.strftime("%Y-%m-%d")
        want = sum(int(line.rsplit('value="', 1)[1].split('"')[0]) for line in xml.splitlines()
                   if "StepCount" in line and 'startDate="%s' % day0 in line)
        self.assertEqual(s["points"]["sum"][0], want)
        st, _, s2 = self.srv.json("GET", "/api/v1/series?type=steps&from=%s&to=%s&points=2000" % (iso(frm), iso(to)),
                                  headers=auth)
        self.assertLessEqual(s2["buckets"], 2000)
        self.assertEqual(s2["bucket_seconds"], 600)
        for bad in ("type=Steps!&from=%s&to=%s" % (iso(frm), iso(to)), "type=steps&from=x&to=%s" % iso(to),
                    "type=steps&from=%s&to=%s" % (iso(to), iso(frm)), "type=steps&from=%s&to=%s&points=2001" % (iso(frm), iso(to)),
                    "type=steps&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"):
            st, _, p = self.srv.json("GET", "/api/v1/series?" + bad, headers=auth)
            self.assertEqual(st, 422, bad)
            self.assertEqual(p["status"], 422)
        st, _, r = self.srv.json("GET", "/api/v1/rhythm?from=%s&to=%s&tz_offset_min=0" % (iso(frm), iso(to)),
                                 headers=auth)
        self.assertEqual(st, 200, r)
        self.assertEqual(len(r["weeks"]), 2)
        self.assertGreater(r["weeks"][0]["is"]["value"], 0.5)  # the generator repeats its day
        self.assertEqual(r["profile"][3], 0.0)  # asleep at 03:00
        self.assertGreater(r["profile"][15], r["profile"][8])  # the afternoon peak
        acro = r["cosinor"]["acrophase_min"]["value"]
        self.assertTrue(12 * 60 <= acro <= 17 * 60, acro)
        st, _, n = self.srv.json("GET", "/api/v1/sleep/nights?from=%s&to=%s" % (iso(frm), iso(to)), headers=auth)
        self.assertEqual(st, 200)
        self.assertGreaterEqual(len(n["nights"]), 8)
        stages = {seg[2] for night in n["nights"] for seg in night["stages"]}
        self.assertTrue({"asleep_core", "asleep_deep", "asleep_rem", "awake"} <= stages, stages)
        st, _, u = self.srv.json("GET", "/api/v1/uploads", headers=auth)
        self.assertEqual(st, 200)
        self.assertEqual([x["upload_id"] for x in u["data"]], [imp["upload_id"]])
        # Another user sees none of it.
        st, _, body = register_login(self.srv, "other@example.com", web=False)
        other = {"Authorization": "Bearer " + json.loads(body)["tokens"]["access_token"]}
        st, _, s = self.srv.json("GET", "/api/v1/series?type=steps&from=%s&to=%s" % (iso(frm), iso(to)), headers=other)
        self.assertEqual((st, s["samples"]), (200, 0))
        st, _, u = self.srv.json("GET", "/api/v1/uploads", headers=other)
        self.assertEqual(u["data"], [])
        st, _, _ = self.srv.json("GET", "/api/v1/series?type=steps&from=%s&to=%s" % (iso(frm), iso(to)))
        self.assertEqual(st, 401)


@unittest.skipIf(browser_missing() is not None, "needs %s" % browser_missing())
class WebInBrowser(unittest.TestCase):
    def test_sign_up_import_views_chat_export_delete_erase(self):
        srv = Server(env=LIMITS)
        tmp = tempfile.mkdtemp(prefix="clarity-web-")
        try:
            artifacts = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artifacts")
            os.makedirs(artifacts, exist_ok=True)
            zpath = os.path.join(tmp, "export.zip")
            with open(zpath, "wb") as f:
                f.write(web_fixture.export_zip(days=28))
            email = "sam-%d@example.com" % int(time.time() * 1000)
            env = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(NPM, "playwright-core"),
                       AXE_CORE=os.path.join(NPM, "axe-core"), CHROMIUM=CHROMIUM, EXPORT_ZIP=zpath,
                       BASE_URL="http://127.0.0.1:%d" % srv.port, ARTIFACTS=artifacts, HOME=tmp, MODE="flow",
                       EMAIL=email, PASSWORD=PASSWORD)
            p = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "web_app_browser.js")],
                               env=env, capture_output=True, timeout=540)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-4000:])
            out = json.loads(p.stdout.decode().strip().splitlines()[-1])
            with open(os.path.join(artifacts, "web-app-result.json"), "w") as f:
                json.dump(out, f, indent=1)
            # The account is gone on the server too.
            st, _, _ = srv.request("POST", "/api/v1/auth/login", json.dumps({"email": email, "password": PASSWORD}),
                                   {"Content-Type": "application/json"})
        finally:
            srv.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(st, 401)
        self.assertEqual(out["page_status"], 200)
        self.assertEqual(out["problems"], [], "console errors, failed requests or HTTP errors")
        self.assertEqual(out["outside"], [], "requests leaving the server")
        # The refresh cookie: HttpOnly, Secure, SameSite=Strict, invisible to script.
        ck = [c for c in out["cookies"] if c["name"] == "clarity_refresh"]
        self.assertEqual(len(ck), 1, out["cookies"])
        self.assertEqual((ck[0]["httpOnly"], ck[0]["secure"], ck[0]["sameSite"]), (True, True, "Strict"))
        self.assertNotIn("clarity_refresh", out["document_cookie"])
        for k, v in out["storage"].items():
            self.assertTrue(len(v) < 16 and "." not in v, "token-like storage %s=%s" % (k, v))
        self.assertEqual(out["cross_site_status"], [403, 403])
        # The progress bar moved through intermediate values to 1.
        values = [p["v"] for p in out["progress"] if p["v"] is not None]
        self.assertEqual(values[-1], 1)
        self.assertGreaterEqual(len([v for v in values if 0 < v < 1]), 3, out["progress"])
        self.assertEqual(values, sorted(values), "the bar went backwards")
        self.assertTrue(any("Sent" in p["text"] for p in out["progress"]))
        self.assertIn("cancelled", out["cancelled"])
        self.assertIn("duplicates skipped", out["summary"])
        self.assertIn("StepCount", out["summary"])
        self.assertIn("DietaryCaffeine", out["summary"])  # an unsupported type, listed
        # Views: the insight with its figures, the actogram, no error box.
        for name, v in out["views"].items():
            self.assertEqual(v.get("axe"), [], "axe on " + name)
            self.assertEqual(v.get("errors", []), [], name)
        self.assertIn("The figures it cites", out["views"]["overview"]["text"])
        self.assertIn("Reference range", out["views"]["overview"]["text"])
        # Issue #20: each figure is named by a short label, not the insight's
        # sentence, and its value is formatted in its unit for the browser's
        # locale (en-US here), not a raw number such as 445.43.
        figs = out["views"]["overview"]["figures"]
        self.assertGreaterEqual(len(figs), 5, figs)
        names = [f[0] for f in figs]
        for name, value, ref in figs:
            self.assertTrue(0 < len(name) <= 40 and not name.endswith("."), figs)
            if not re.match(r"^\d\.\d\d$", value):  # a 0-1 ratio to two places has no unit
                self.assertNotRegex(value, r"^[-+]?[\d,.]+$", figs)  # a bare number
            self.assertNotEqual(value, "—", figs)
        by_name = {f[0]: f for f in figs}
        self.assertIn("Sleep duration", names)
        self.assertRegex(by_name["Sleep duration"][1], r"^\d+ min \(\d+ h \d\d min\)$")
        self.assertIn("min", by_name["Sleep duration"][2])
        self.assertRegex(by_name["Daily steps"][2], r"\d,\d{3} steps/day")  # the reference alike
        self.assertRegex(by_name["Resting heart rate"][1], r"^\d+ bpm$")
        self.assertRegex(by_name["Daily steps"][1], r"^\d{1,2},\d{3} steps/day$")  # grouped
        self.assertRegex(by_name["Sleep efficiency"][1], r"^\d+%$")
        self.assertEqual(out["views"]["overview-390"]["figures"], figs)
        self.assertGreater(out["actogram_marks"], 28 * 20)
        self.assertIn("Interdaily stability", out["views"]["rhythm"]["text"])
        self.assertIn("Deep", out["views"]["sleep"]["text"])
        self.assertIn("Resting heart rate", out["views"]["heart"]["text"])
        for name in ("sleep", "rhythm", "heart"):
            self.assertTrue(out["views"][name]["charts"], name)
            for c in out["views"][name]["charts"]:
                self.assertLess(c["ms"], CHART_MS, name)
        self.assertLessEqual(out["overflow_390"], 390, out["overflow_what"])
        self.assertTrue(out.get("chat_answer"), "no chat answer")
        self.assertGreater(out["export_ndjson"], 1000)
        self.assertEqual(out["export_csv"], out["export_ndjson"] + 1)  # the header row
        self.assertIn("No uploads yet", out["after_delete"])
        self.assertIn("erased", out["after_erase"])
        self.assertEqual(out["storage_after"], 0)
        self.assertLess(out["first_view_ms"], FIRST_VIEW_MS, out["first_view_timing"])
        for v in ("overview", "sleep", "rhythm", "heart", "insights", "import", "data"):
            for suffix in ("", "-390"):
                self.assertGreater(os.path.getsize(os.path.join(artifacts, "web-%s%s.png" % (v, suffix))), 5000)


if __name__ == "__main__":
    unittest.main()
