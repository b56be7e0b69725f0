"""Builds the container image with buildah and checks it (scripts/container-check):
PORT honoured, HEALTHCHECK passes, uid 10001, `clarity smoke` and
`clarity migrate up` inside the image. Building takes minutes (the build
stage installs the -dev packages), so it runs only when asked:

    CLARITY_CONTAINER_TEST=1 ctest -R e2e/test_container --timeout 1800 --output-on-failure

(5 to 10 minutes here: vfs storage copies every layer).

CI checks the image with Docker instead (.github/workflows/ci.yml)."""
import os
import shutil
import subprocess
import unittest

ROOT = os.environ.get("CLARITY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


class Container(unittest.TestCase):
    @unittest.skipUnless(os.environ.get("CLARITY_CONTAINER_TEST") == "1",
                         "set CLARITY_CONTAINER_TEST=1 to build the image (minutes)")
    @unittest.skipUnless(shutil.which("buildah"), "buildah is not installed")
    def test_image(self):
        p = subprocess.run([os.path.join(ROOT, "scripts", "container-check")],
                           capture_output=True, text=True, timeout=1750)
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-4000:])
        self.assertIn("all checks passed", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
