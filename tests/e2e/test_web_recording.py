"""The web app's import of a research recording (issue 20), in a real
browser: web_recording_browser.js signs up, drops a week-long Actiwatch
.AWD on the import page (upload throttled so the progress bar moves), sees
the recording summarised (epochs stored, duplicates) and the analysis's
insight arrive, drops it again (every epoch a duplicate), sees its
actogram on Rhythm, and runs axe-core on those pages at 1280 and 390 px (no serious or critical violation), with no
console error, failed request or request leaving the server. Screenshots
go to test-artifacts/ beside the binary. Needs `scripts/install-deps
--browser` (Chromium, playwright-core, axe-core); otherwise skipped (77).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime, timedelta

from harness import BIN, Server
from test_analyze_formats import make_awd
from test_web_app import CHROMIUM, LIMITS, NPM, PASSWORD, browser_missing


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class WebRecording(unittest.TestCase):
    def test_drop_a_recording(self):
        missing = browser_missing()
        if missing:
            self.skipTest("browser test needs " + missing)
        srv = Server(env=LIMITS)
        tmp = tempfile.mkdtemp(prefix="clarity-webrec-")
        try:
            artifacts = os.path.join(os.path.dirname(os.path.abspath(BIN)), "test-artifacts")
            os.makedirs(artifacts, exist_ok=True)
            # A week ending yesterday (the views look back from the latest data, up to two years).
            start = datetime.now() - timedelta(days=8)
            rec = os.path.join(tmp, "subject07.AWD")
            make_awd(rec, days=7)
            with open(rec) as f:
                lines = f.read().split("\n")
            lines[1] = start.strftime("%d-") + MONTHS[start.month - 1] + start.strftime("-%Y")
            with open(rec, "w") as f:
                f.write("\n".join(lines))
            env = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(NPM, "playwright-core"),
                       AXE_CORE=os.path.join(NPM, "axe-core"), CHROMIUM=CHROMIUM, RECORDING=rec,
                       BASE_URL="http://127.0.0.1:%d" % srv.port, ARTIFACTS=artifacts, HOME=tmp,
                       EMAIL="rae-%d@example.com" % int(time.time() * 1000), PASSWORD=PASSWORD)
            p = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "web_recording_browser.js")],
                               env=env, capture_output=True, timeout=400)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-4000:])
            out = json.loads(p.stdout.decode().strip().splitlines()[-1])
            with open(os.path.join(artifacts, "web-recording-result.json"), "w") as f:
                json.dump(out, f, indent=1)
        finally:
            srv.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(out["problems"], [], "console errors, failed requests or HTTP errors")
        self.assertEqual(out["outside"], [], "requests leaving the server")
        self.assertIn("research recording", out["drop_text"])
        # The recording went to /recordings with its name and the browser's
        # UTC offset (Europe/Berlin: +60 in winter, +120 in summer).
        self.assertEqual(len(out["requests"]), 3, out["requests"])  # cancelled, stored, duplicate
        self.assertRegex(out["requests"][0], r"^/api/v1/recordings\?name=subject07\.AWD&tz_offset_min=(60|120)$")
        values = [x["v"] for x in out["progress"] if x["v"] is not None]
        self.assertEqual(values[-1], 1)
        self.assertGreaterEqual(len([v for v in values if 0 < v < 1]), 3, out["progress"])
        self.assertEqual(values, sorted(values), "the bar went backwards")
        self.assertIn("Recording summary", out["summary"])
        self.assertIn("Actiwatch (AWD)", out["summary"])
        self.assertIn("10,080 epochs of activity counts read from subject07.AWD, 10,080 stored, 0 duplicates skipped",
                      out["summary"])
        self.assertIn(start.strftime("%Y-%m-%d") + " 12:00", out["summary"])
        self.assertIn("ready", out["status"])
        self.assertIn("10,080 epochs of activity counts read from subject07.AWD, 0 stored, 10,080 duplicates skipped",
                      out["summary_again"])
        self.assertIn("Nothing of the recording was stored", out["cancelled"])
        # Your data: the stored upload and the duplicate one, none from the cancelled drop.
        self.assertEqual(out["data_text"].count("research_recording"), 2, out["data_text"])
        self.assertIn("actogram of activity counts", out["rhythm_text"])
        self.assertGreater(out["actogram_marks"], 7 * 20)
        self.assertEqual(out["axe_rhythm"], [])
        self.assertEqual(out["axe"], [])
        self.assertEqual(out["axe_390"], [])
        self.assertEqual(out["axe_data"], [])
        self.assertLessEqual(out["overflow_390"], 390)
        for name in ("web-recording-import.png", "web-recording-import-390.png"):
            self.assertGreater(os.path.getsize(os.path.join(artifacts, name)), 5000)


if __name__ == "__main__":
    r = unittest.main(exit=False).result
    if r.skipped and not r.failures and not r.errors:
        sys.exit(77)
    sys.exit(0 if r.wasSuccessful() else 1)
