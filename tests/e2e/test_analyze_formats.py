"""End-to-end `clarity analyze` over research recordings (issue #18): every
format Clarity reads (Actiwatch .AWD with the `71 M` marker, Philips
Actiware exports in English/French/German, Condor ActTrust, CamNtech
MotionWatch, ActiLife CSV, ActiGraph .agd), from fixtures made for these
tests (tests/data/actigraphy), through the real binary: figures within
physiological bounds, reasons where null, per-epoch output, the actogram,
and folder mode with one row per recording and a progress line each."""
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest
import xml.dom.minidom

from harness import BIN

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "actigraphy")


def make_awd(path, days=2):
    """An Actiwatch .AWD of `days` from noon, 1-minute epochs (code 4), with
    the event marker written as `71 M`; watch off the wrist (zeros) for 20 h
    on the second day."""
    lines = ["CLARITY", "11-Mar-2024", "12:00", "4", "40", "SN1", "F"]
    x = 7
    for m in range(days * 1440):
        x = (x * 1103515245 + 12345) % 2**31
        r = (x >> 8) % 1000 / 1000
        clock = (720 + m) % 1440
        v = int(150 + 250 * r) if 420 <= clock < 1380 else (int(20 * r) if r > 0.7 else 0)
        if 1440 + 60 <= m < 1440 + 60 + 1200:
            v = 0
        lines.append("%d M" % v if m == 1197 else str(v))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_agd(path):
    """An ActiGraph .agd (SQLite): settings.epochlength 60, data rows from
    2024-03-11T12:00 local for two days."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE settings (settingID INTEGER, settingName TEXT, settingValue TEXT)")
    db.execute("INSERT INTO settings VALUES (1, 'epochlength', '60')")
    db.execute("CREATE TABLE data (dataTimestamp INTEGER, axis1 INTEGER, axis2 INTEGER, axis3 INTEGER)")
    t0 = (1710158400 + 62135596800) * 10**7
    rows = []
    for m in range(2 * 1440):
        clock = (720 + m) % 1440
        rows.append((t0 + m * 60 * 10**7, 900 + (m * 37) % 700 if 420 <= clock < 1380 else (m % 11) * 2, 1, 1))
    db.executemany("INSERT INTO data VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def analyze(*args):
    p = subprocess.run([BIN, "analyze", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


class Formats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="clarity-formats-")
        for f in os.listdir(DATA):
            shutil.copy(os.path.join(DATA, f), cls.dir)
        make_awd(os.path.join(cls.dir, "actiwatch_71M.AWD"))
        make_agd(os.path.join(cls.dir, "actigraph.agd"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check_bounds(self, doc):
        s, c = doc["sleep"], doc["circadian"]
        self.assertGreaterEqual(len(s["nights"]), 1)
        for n in s["nights"]:
            self.assertLessEqual(n["time_in_bed_min"]["value"], 960)
            if n["total_sleep_min"]["value"] is not None:
                self.assertLessEqual(n["total_sleep_min"]["value"], n["time_in_bed_min"]["value"])
        for k in ("interdaily_stability", "relative_amplitude"):
            m = c[k]
            if m["value"] is None:
                self.assertTrue(m["reason"])
            else:
                self.assertTrue(0 <= m["value"] <= 1, (k, m))
        if s["sleep_regularity_index"]["value"] is not None:
            self.assertTrue(-100 <= s["sleep_regularity_index"]["value"] <= 100)
        self.assertIsNotNone(s["nonwear_min"]["value"])

    def test_each_format_end_to_end(self):
        want = {"philips_rpx_eng_us.csv": "rpx", "philips_rpx_fr.csv": "rpx", "philips_rpx_ger.csv": "rpx",
                "condor_acttrust.txt": "atr", "camntech_motionwatch.mtn": "mtn",
                "actilife_gt3x.csv": "actilife-csv", "actigraph.agd": "agd", "actiwatch_71M.AWD": "awd"}
        for name, fmt in want.items():
            with self.subTest(name=name):
                scorer = ["--scorer", "cole-kripke-actigraph"] if fmt in ("actilife-csv", "agd") else []
                rc, out, err = analyze(os.path.join(self.dir, name), *scorer)
                self.assertEqual(rc, 0, err)
                doc = json.loads(out)
                self.assertEqual(doc["input"]["format"], fmt)
                self.assertEqual(doc["minutes"], 2 * 1440)
                self.check_bounds(doc)

    def test_awd_71M_nonwear_epochs_and_actogram(self):
        """The pyActigraphy example-style marker loads; 20 h of zeros are
        non-wear (Choi 2011), not a 19-hour night; --epochs and --actogram."""
        outdir = tempfile.mkdtemp(prefix="clarity-out-")
        self.addCleanup(shutil.rmtree, outdir, True)
        ep, svg = os.path.join(outdir, "e.csv"), os.path.join(outdir, "a.svg")
        rc, out, err = analyze(os.path.join(self.dir, "actiwatch_71M.AWD"), "--epochs", ep, "--actogram", svg)
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertGreaterEqual(doc["sleep"]["nonwear_min"]["value"], 1200)
        for n in doc["sleep"]["nights"]:
            self.assertLess(n["time_in_bed_min"]["value"], 600)
        with open(ep) as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["time", "value", "wear", "sleep"])
        self.assertEqual(len(rows), 1 + 2 * 1440)
        self.assertEqual(rows[1 + 1440 + 60][2], "0")  # masked as non-wear
        self.assertEqual(rows[1][2], "1")
        xml.dom.minidom.parse(svg)  # well-formed SVG
        with open(svg) as f:
            self.assertIn("Double-plotted actogram", f.read())

    def test_folder_mode(self):
        bad = os.path.join(self.dir, "broken.AWD")
        with open(bad, "w") as f:
            f.write("s\n11-Mar-2024\n12:00\n4\n1\n1\nF\n5\noops\n")
        try:
            rc, out, err = analyze(self.dir)
        finally:
            os.unlink(bad)
        self.assertEqual(rc, 1)  # one malformed recording, the others analysed
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(len(rows), 9)
        by = {r["file"]: r for r in rows}
        self.assertEqual(by["broken.AWD"]["error"], "AWD line 9: expected a count")
        for name, r in by.items():
            if name != "broken.AWD":
                self.assertEqual(r["error"], "", name)
                self.assertEqual(r["minutes"], "2880")
        self.assertEqual(err.count("\n"), 9)
        self.assertIn("[1/9] ", err)


class PyActigraphyConventions(unittest.TestCase):
    def test_reproduces_pyactigraphy_to_1e6(self):
        """--conventions pyactigraphy against values pyActigraphy's own code
        computed on recordings made for Clarity (tests/data/pyactigraphy)."""
        base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pyactigraphy")
        with open(os.path.join(base, "reference.json")) as f:
            ref = json.load(f)["recordings"]
        self.assertEqual(len(ref), 6)
        # 1-minute (a-c), 30-s (d), 2-min from an odd minute (e), 15-s (f) epochs
        self.assertEqual(sorted({int(r["frequency_s"]) for r in ref.values()}), [15, 30, 60, 120])
        keys = {"IS": "interdaily_stability", "IV": "intradaily_variability", "RA": "relative_amplitude",
                "L5": "l5", "M10": "m10", "L5_onset_min": "l5_onset_clock_min", "M10_onset_min": "m10_onset_clock_min"}
        for name, want in ref.items():
            rc, out, err = analyze(os.path.join(base, name), "--conventions", "pyactigraphy")
            self.assertEqual(rc, 0, err)
            doc = json.loads(out)
            self.assertIn("pyactigraphy", doc["input"]["conventions"])
            self.assertEqual(doc["input"]["epoch_s"], want["frequency_s"], name)
            rc, text, err = analyze(os.path.join(base, name), "--conventions", "pyactigraphy", "--format", "text")
            self.assertEqual(rc, 0, err)
            self.assertIn("pyActigraphy's conventions on %d-s epochs" % want["frequency_s"], text)
            for k, jk in keys.items():
                got = doc["circadian"][jk]["value"]
                self.assertLessEqual(abs(got - want[k]), 1e-6 * max(abs(want[k]), 1e-9), (name, k, got, want[k]))
            # Clarity's own conventions differ on the same file (the table in docs/algorithms.md)
            rc, out, _ = analyze(os.path.join(base, name))
            own = json.loads(out)["circadian"]
            self.assertNotAlmostEqual(own["l5"]["value"], want["L5"], places=3)

    def test_30s_csv_rows_are_read_per_epoch(self):
        """The 30-s recording (ref_d.AWD) written as `timestamp,value` CSV
        rows with seconds gives pyActigraphy's figures too: the epoch is the
        rows' step (no --epoch needed), not the minute."""
        import datetime
        base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pyactigraphy")
        with open(os.path.join(base, "reference.json")) as f:
            want = json.load(f)["recordings"]["ref_d.AWD"]
        with open(os.path.join(base, "ref_d.AWD")) as f:
            lines = f.read().split("\n")
        t0 = datetime.datetime.strptime(lines[1] + " " + lines[2], "%d-%b-%Y %H:%M")
        rows = ["timestamp,activity"]
        for i, line in enumerate(x for x in lines[7:] if x.strip()):
            t = t0 + datetime.timedelta(seconds=30 * i)
            rows.append("%s,%s" % (t.strftime("%Y-%m-%dT%H:%M:%S"), line.split()[0]))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ref_d.csv")
            with open(path, "w") as f:
                f.write("\n".join(rows) + "\n")
            rc, out, err = analyze(path, "--conventions", "pyactigraphy")
            self.assertEqual(rc, 0, err)
            doc = json.loads(out)
            rc2, out2, err2 = analyze(path, "--conventions", "pyactigraphy", "--epoch", "30")
            self.assertEqual(rc2, 0, err2)
            self.assertEqual(json.loads(out2)["circadian"], doc["circadian"])
        self.assertEqual(doc["input"]["epoch_s"], 30)
        c = doc["circadian"]
        for k, jk in (("IS", "interdaily_stability"), ("IV", "intradaily_variability"), ("RA", "relative_amplitude"),
                      ("L5", "l5"), ("M10", "m10"), ("L5_onset_min", "l5_onset_clock_min"),
                      ("M10_onset_min", "m10_onset_clock_min")):
            self.assertLessEqual(abs(c[jk]["value"] - want[k]), 1e-6 * max(abs(want[k]), 1e-9), (k, c[jk], want[k]))

    def test_folder_mode_follows_the_conventions(self):
        """A folder of the six reference recordings with --conventions
        pyactigraphy: every summary row carries pyActigraphy's figures."""
        base = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "pyactigraphy")
        with open(os.path.join(base, "reference.json")) as f:
            ref = json.load(f)["recordings"]
        with tempfile.TemporaryDirectory() as d:
            for name in ref:
                shutil.copy(os.path.join(base, name), d)
            rc, out, err = analyze(d, "--conventions", "pyactigraphy")
            self.assertEqual(rc, 0, err)
        rows = {r["file"]: r for r in csv.DictReader(io.StringIO(out))}
        self.assertEqual(sorted(rows), sorted(ref))
        cols = {"IS": "is", "IV": "iv", "RA": "ra", "L5": "l5", "M10": "m10", "L5_onset_min": "l5_onset_min",
                "M10_onset_min": "m10_onset_min"}
        for name, want in ref.items():
            for k, col in cols.items():
                got = float(rows[name][col])
                self.assertLessEqual(abs(got - want[k]), 1e-6 * max(abs(want[k]), 1e-9), (name, k, got, want[k]))

    def test_epoch_not_dividing_an_hour_is_refused(self):
        """pyActigraphy's hourly bins need whole epochs: a 7-minute epoch is
        a clear error (exit 1), not figures on a different footing."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "seven.csv")
            with open(path, "w") as f:
                for i in range(3 * 24 * 60 // 7):
                    m = 7 * i
                    f.write("2024-03-%02dT%02d:%02d:00,%d\n" % (1 + m // 1440, m % 1440 // 60, m % 60, 50 if m % 1440 > 420 else 0))
            rc, out, err = analyze(path, "--conventions", "pyactigraphy", "--epoch", "420")
            self.assertEqual(rc, 1, out)
            self.assertIn("does not divide one hour", err)
            rc, _, err = analyze(path, "--epoch", "420")
            self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
