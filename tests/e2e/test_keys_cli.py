"""`clarity keys rotate` and `clarity keys rewrap` over a real database
(issue #19): the pass reports per table (raw_uploads, analyses, insights,
sample_days, sample_day_aggs) what it scanned, re-wrapped, skipped and could not unwrap; a
sealed sample block whose key does not unwrap is reported and makes the
command exit 1, an unsealed sample_days row is not looked at, and a second
pass has nothing left to move. The figures themselves are checked against
the store in tests/unit/keyring_test.c."""
import os
import re
import shutil
import sqlite3
import tempfile
import unittest

import loadgen
from harness import Server, run_cli

LIMITS = {"RATE_LIMITS": "auth=100000/60,upload=100000/60,api=100000/60,insights=100000/60",
          "WORKER_THREADS": "0"}


def table_lines(out):
    """{table: (scanned, rewrapped, skipped, failed, finished)} from the output."""
    got = {}
    for m in re.finditer(r"^(\w+)\s+(\d+) scanned, (\d+) re-wrapped, (\d+) skipped \(changed meanwhile\), "
                         r"(\d+) failed( \(not finished\))?$", out, re.M):
        got[m.group(1)] = tuple(int(m.group(i)) for i in range(2, 6)) + (m.group(6) is None,)
    return got


class KeysCli(unittest.TestCase):
    def test_rotate_reports_every_table(self):
        d = tempfile.mkdtemp(prefix="clarity-keys-")
        try:
            srv = Server(env=LIMITS, workdir=d)
            user, token = loadgen.register("127.0.0.1", srv.port)
            for n in range(3):
                status, doc = loadgen.call("127.0.0.1", srv.port, "POST", "/api/v1/healthkit/upload",
                                           loadgen.upload_body(user, n), token=token)
                self.assertEqual(status, 202, doc)
            srv.stop()

            db = sqlite3.connect(os.path.join(d, "clarity.db"))
            # An unsealed block (0xD1) and a sealed one (format 1, version 1)
            # whose wrapped key is not one the ring made.
            db.execute("INSERT INTO sample_days (id, user_id, day, data) VALUES (901, ?, 20000, ?)",
                       (user, bytes([0xD1]) + b"\x00" * 40))
            db.execute("INSERT INTO sample_days (id, user_id, day, data) VALUES (902, ?, 20000, ?)",
                       (user, bytes([1, 1, 0, 0, 0]) + os.urandom(72 + 24 + 16 + 10)))
            db.commit()
            db.close()

            rc, out, err = run_cli(["keys", "rotate", "--wait", "0", "--batch", "2"], env=srv.env, cwd=d)
            self.assertEqual(rc, 1, out + err)
            got = table_lines(out)
            self.assertEqual(set(got), {"raw_uploads", "analyses", "insights", "sample_days", "sample_day_aggs"}, out)
            self.assertEqual(got["raw_uploads"], (3, 3, 0, 0, True), out)
            # The uploads' samples are in sealed day rows (one or more), all
            # moved; the damaged one is reported.
            scanned, rewrapped, skipped, failed, finished = got["sample_days"]
            self.assertGreaterEqual(rewrapped, 1, out)
            self.assertEqual((scanned, skipped, failed, finished), (rewrapped + 1, 0, 1, True), out)
            self.assertIn("re-wrapped %d data keys to version 2" % (3 + rewrapped), out)
            self.assertIn("1 data keys did not unwrap", err)

            # The damaged block removed: nothing left to move, exit 0.
            db = sqlite3.connect(os.path.join(d, "clarity.db"))
            db.execute("DELETE FROM sample_days WHERE id = 902")
            db.commit()
            db.close()
            rc, out, err = run_cli(["keys", "rewrap"], env=srv.env, cwd=d)
            self.assertEqual(rc, 0, out + err)
            got = table_lines(out)
            self.assertEqual(got["raw_uploads"], (3, 0, 0, 0, True), out)
            self.assertEqual(got["sample_days"], (0, 0, 0, 0, True), out)
            self.assertIn("re-wrapped 0 data keys to version 2", out)
            db = sqlite3.connect(os.path.join(d, "clarity.db"))
            self.assertEqual(db.execute("SELECT hex(data) FROM sample_days WHERE id = 901").fetchone()[0],
                             "D1" + "00" * 40)
            db.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
