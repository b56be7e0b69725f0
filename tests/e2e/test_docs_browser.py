"""/docs in a real browser (issue 11): headless Chromium driven by
playwright-core opens the page, finds the operations of docs/openapi.json
listed, runs "Try it out" on GET /liveness and saves a screenshot in the build
tree (test-artifacts/docs-browser.png beside the binary). Nothing outside the
server is fetched and the page's CSP is not violated.

Optional: needs `scripts/install-deps --browser` (Debian chromium and npm
playwright-core); without them the test reports itself skipped (exit 77).
"""
import json
import os
import shutil
import subprocess
import sys
import unittest

from harness import BIN, Server

SRC = os.environ.get("CLARITY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NPM = os.path.join(SRC, "build", "swagger-ui", "node_modules")
PLAYWRIGHT = os.path.join(NPM, "playwright-core")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SKIP = 77


def missing():
    if shutil.which("node") is None:
        return "node"
    if not os.path.isfile(os.path.join(PLAYWRIGHT, "package.json")):
        return "playwright-core (scripts/install-deps --browser)"
    if not os.access(CHROMIUM, os.X_OK):
        return "chromium (scripts/install-deps --browser)"
    if not os.path.isfile(os.path.join(NPM, "swagger-ui-dist", "swagger-ui-bundle.js")):
        return "swagger-ui-dist (scripts/install-deps)"
    return None


class DocsInBrowser(unittest.TestCase):
    def test_operations_listed_and_try_it_out(self):
        srv = Server()
        try:
            artifacts = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artifacts")
            os.makedirs(artifacts, exist_ok=True)
            shot = os.path.join(artifacts, "docs-browser.png")
            env = dict(os.environ, PLAYWRIGHT_CORE=PLAYWRIGHT, CHROMIUM=CHROMIUM, SCREENSHOT=shot,
                       BASE_URL="http://127.0.0.1:%d" % srv.port, HOME=srv.dir)
            p = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "docs_browser.js")],
                               env=env, capture_output=True, timeout=240)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
            out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        finally:
            srv.stop()
        self.assertEqual(out["page_status"], 200)
        self.assertEqual(out["title"].strip().split()[0], "Clarity")
        with open(os.path.join(SRC, "docs", "openapi.json")) as f:
            doc = json.load(f)
        want = {"operations-%s-%s" % (o["tags"][0], o["operationId"])
                for item in doc["paths"].values() for m, o in item.items() if isinstance(o, dict) and "tags" in o}
        self.assertEqual(sorted(want - set(out["operations"])), [], "operations not listed by /docs")
        self.assertEqual(out["try_status"], "200")
        self.assertEqual(json.loads(out["try_body"])["status"], "alive")
        self.assertEqual(out["outside"], [], "requests leaving the server")
        self.assertEqual(out["problems"], [], "console errors, CSP violations or failed requests")
        self.assertTrue(os.path.getsize(shot) > 10000, shot)


if __name__ == "__main__":
    why = missing()
    if why is not None:
        print("test_docs_browser: skipped, missing " + why)
        sys.exit(SKIP)
    unittest.main()
