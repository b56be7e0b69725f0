"""scripts/vuln-scan (#21): an SBOM checked against Debian's security suite
(apt's lists) and the debian-security-support lists. A package older than
its bookworm-security version is a finding; the current one is not."""
import os
import subprocess
import tempfile
import unittest

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SCAN = os.path.join(ROOT, "scripts", "vuln-scan")


def security_version(pkg):
    p = subprocess.run(["apt-cache", "madison", pkg], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) >= 3 and "-security" in cols[2]:
            return cols[1]
    return None


class VulnScan(unittest.TestCase):
    def scan(self, lines, *extra):
        with tempfile.NamedTemporaryFile("w", suffix=".sbom", delete=False) as f:
            f.write("".join("%s %s\n" % kv for kv in lines))
        try:
            p = subprocess.run([SCAN, "--sbom", f.name] + list(extra), capture_output=True, text=True, timeout=120)
            return p.returncode, p.stdout, p.stderr
        finally:
            os.unlink(f.name)

    def test_pending_security_update_is_a_finding(self):
        cur = security_version("libssl3")
        if cur is None:
            # Without apt's bookworm-security lists the scan must say it cannot check.
            code, out, err = self.scan([("libssl3", "3.0.0-1")])
            self.assertEqual(code, 2, out + err)
            self.assertIn("apt-get update", err)
            return
        code, out, err = self.scan([("libssl3", "3.0.0-1"), ("libjansson4", "2.14-2")])
        self.assertEqual(code, 1, out + err)
        self.assertIn("FINDING libssl3 3.0.0-1: security update %s pending" % cur, out)
        self.assertNotIn("libjansson4", out)
        # The version from the security suite itself: clean.
        code, out, err = self.scan([("libssl3", cur)])
        self.assertEqual(code, 0, out + err)
        self.assertIn("1 packages, 0 findings", out)
        # An accepted finding.
        code, out, err = self.scan([("libssl3", "3.0.0-1")], "--allow", "libssl3")
        self.assertEqual(code, 0, out + err)

    def test_sbom_out_and_bad_input(self):
        with tempfile.TemporaryDirectory() as d:
            out_path = os.path.join(d, "sbom.txt")
            code, out, err = self.scan([("libjansson4", "2.14-2"), ("zz-not-a-package", "1.0")],
                                       "--sbom-out", out_path)
            self.assertIn(code, (0, 2), out + err)
            with open(out_path) as f:
                self.assertEqual(f.read(), "libjansson4 2.14-2\nzz-not-a-package 1.0\n")
        code, out, err = self.scan([])
        self.assertNotEqual(code, 0)
        self.assertIn("lists no packages", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
