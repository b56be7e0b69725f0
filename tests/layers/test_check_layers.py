"""scripts/check-layers fails on a forbidden include and passes the tree.

Copies src/ to a scratch directory, then adds one forbidden edge at a time
(an upward include from the store, a use case including the API, the
pipeline including ingest, an unknown folder) and expects exit 1 naming the
file and the edge; the unmodified copy passes."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-layers")


def run(src):
    p = subprocess.run([sys.executable, SCRIPT, src], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="clarity-layers-")
        self.src = os.path.join(self.dir, "src")
        shutil.copytree(os.path.join(ROOT, "src"), self.src)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def add(self, rel, line):
        with open(os.path.join(self.src, rel), "a") as f:
            f.write("\n" + line + "\n")

    def test_tree_passes(self):
        rc, out = run(self.src)
        self.assertEqual(rc, 0, out)
        self.assertIn("check-layers: ok", out)

    def test_store_including_chat_fails(self):
        self.add("store/queue.c", '#include "chat/hub.h"')
        rc, out = run(self.src)
        self.assertEqual(rc, 1, out)
        self.assertIn("src/store/queue.c:", out)
        self.assertIn("store -> chat is not allowed", out)

    def test_ingest_including_api_fails(self):
        self.add("ingest/upload.h", '#include "api/input.h"')
        rc, out = run(self.src)
        self.assertEqual(rc, 1, out)
        self.assertIn("ingest -> api is not allowed", out)

    def test_pipeline_including_ingest_fails(self):
        self.add("pipeline/compute.c", '#include "ingest/healthkit.h"')
        rc, out = run(self.src)
        self.assertEqual(rc, 1, out)
        self.assertIn("pipeline -> ingest is not allowed", out)

    def test_core_including_anything_fails(self):
        self.add("core/log.h", '  #  include "store/store.h"')
        rc, out = run(self.src)
        self.assertEqual(rc, 1, out)
        self.assertIn("core -> store is not allowed", out)

    def test_bare_jansson_parse_fails(self):
        self.add("api/views.c", "static json_t *bad(const char *s) { return json_loads(s, 0, NULL); }")
        rc, out = run(self.src)
        self.assertEqual(rc, 1, out)
        self.assertIn("src/api/views.c:", out)
        self.assertIn("json_parse", out)

    def test_unknown_folder_fails(self):
        os.mkdir(os.path.join(self.src, "misc"))
        with open(os.path.join(self.src, "misc", "x.c"), "w") as f:
            f.write('#include "core/err.h"\n')
        rc, out = run(self.src)
        self.assertEqual(rc, 1, out)
        self.assertIn("folder misc/ has no place", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
