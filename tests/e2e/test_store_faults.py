"""Store-call fault injection over the real binary (issue 16): `clarity
serve` runs with tests/fault/store_fail.c preloaded, and while JSON uploads,
HealthKit uploads, Apple Health imports, reads, the analysis pipeline and
chat go on, every Nth SQLite statement step or exec (BEGIN, COMMIT …) fails
with a disk, full-disk or lock error for a few seconds; on PostgreSQL every
Nth statement is answered by the server's own error (disk full,
serialization failure, too many connections), which also aborts the
transaction it was in. Held to:

- no crash: the process is alive after the window and serves normally;
- no acknowledged data lost: every upload and import answered 2xx is there
  afterwards with the counts it was acknowledged with;
- a failure is the server's: every failed request is a 503 problem+json
  with Retry-After, never a 4xx and never an empty answer; chat answers
  INTERNAL_ERROR (send again), never a client-error code, and keeps the
  socket;
- the analysis queue retries: after the window every acknowledged upload's
  analysis completes, also after a 20-second outage, longer than five
  attempts' backoff (a job failed for the store's reason spends no attempt);
- no sanitizer report and no leak (the sanitizer build runs this too:
  unlike an allocator, the store library shares nothing with ASan).
"""
import collections
import datetime
import os
import sys
import time
import unittest
import uuid

from harness import PG_INITDB, PgServer, Server, production_keys
from test_chat import connect
from test_fault_injection import healthkit_body, upload_body
from test_health_data import Client
from test_import import EXPORT

LIB = os.environ.get("CLARITY_STORE_FAULT_LIB", "")
CLIENT_ERROR_CODES = {"INVALID_JSON", "UNKNOWN_MESSAGE_TYPE", "MESSAGE_TOO_LARGE", "TOO_MANY_DATA_POINTS",
                      "RATE_LIMIT_EXCEEDED"}


def export_body(i):
    """test_import's export moved to days of its own, so that every import
    stores its 5 samples (no duplicates of another's)."""
    d0 = datetime.date(2024, 1, 1) + datetime.timedelta(days=2 * i)
    d1 = d0 + datetime.timedelta(days=1)
    return EXPORT.replace("2026-11-21", d1.isoformat()).replace("2026-11-20", d0.isoformat()).encode()


def samples_by_upload(c):
    """How many stored samples each upload has, over every page."""
    counts, path = collections.Counter(), "/api/v1/health-data?limit=100"
    while path:
        st, _, doc = c.call("GET", path)
        assert st == 200, doc
        counts.update(m["upload_id"] for m in doc["data"])
        nxt = doc.get("links", {}).get("next")
        path = nxt if nxt else None
    return counts


def wait_done(c, upload_ids, timeout):
    """Poll the uploads' statuses until every analysis is done (or failed);
    the last status of each."""
    deadline = time.monotonic() + timeout
    pending, done = set(upload_ids), {}
    while pending and time.monotonic() < deadline:
        for uid in list(pending):
            st, _, doc = c.call("GET", "/api/v1/healthkit/status/" + uid)
            done[uid] = doc
            if st == 200 and doc["status"] in ("completed", "failed"):
                pending.discard(uid)
        if pending:
            time.sleep(0.5)
    return done


class StoreFaults(unittest.TestCase):
    extra_env = {}  # none: the harness's SQLite file

    def run_window(self, every, seconds=5.0, hold=0.0):
        arm = os.path.join(os.environ.get("TMPDIR", "/tmp"), "clarity-store-fault-%s" % uuid.uuid4().hex)
        count = arm + ".count"
        asan = os.environ.get("ASAN_OPTIONS", "")
        srv = Server(env={"LD_PRELOAD": LIB, "STORE_FAIL_EVERY": str(every), "STORE_FAIL_ARM_FILE": arm,
                          "STORE_FAIL_COUNT_FILE": count,
                          # An uninstrumented preload is fine with ASan once
                          # it need not come first in the library list.
                          "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
                          "RATE_LIMITS": "auth=10000/60,upload=100000/60,api=100000/60,insights=10000/60,"
                                         "chat=100000/60",
                          "CHAT_MESSAGES_PER_MINUTE": "100000", "WORKER_THREADS": "2",
                          # A job whose failure could not be recorded comes back
                          # when its lease ends: soon, in a test.
                          "WORKER_LEASE_SECONDS": "5",
                          "DEBUG": "true", **self.extra_env})
        acked, analysed, answers, chat_answers = [], [], {}, {}
        client_errors, bad_5xx, chat_bad = [], [], []
        try:
            c = Client(srv)
            ws, _ = connect(srv, c, timeout=30)  # generous: a loaded machine
            open(arm, "w").close()  # the window opens
            t_end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < t_end:
                i += 1
                kind = i % 5
                if kind == 4:
                    ws.send_json({"type": "message", "content": "How did I sleep?"})
                    m = ws.recv(skip=("typing", "insight"))  # pipeline pushes come too
                    key = m.get("code") or m.get("type")
                    chat_answers[key] = chat_answers.get(key, 0) + 1
                    if m.get("type") == "error" and m.get("code") in CLIENT_ERROR_CODES:
                        chat_bad.append(m)
                    continue
                if kind == 0:
                    st, hdrs, doc = c.call("POST", "/api/v1/health-data/upload", upload_body(c.user_id, i))
                    if 200 <= st < 300:
                        acked.append(("json", doc["processing_id"], doc.get("accepted_metrics", 3)))
                elif kind == 1:
                    st, hdrs, doc = c.call("POST", "/api/v1/healthkit/upload", healthkit_body(c.user_id, i))
                    if 200 <= st < 300:
                        acked.append(("healthkit", doc["upload_id"], 1))
                elif kind == 2:
                    hdr = {"Authorization": "Bearer " + c.token, "Content-Type": "application/xml"}
                    st, hdrs, doc = srv.json("POST", "/api/v1/healthkit/import", export_body(i), hdr)
                    if 200 <= st < 300:
                        acked.append(("import", doc["upload_id"], doc["import"]["stored"]))
                else:
                    st, hdrs, doc = c.call("GET", "/api/v1/health-data")
                answers[st] = answers.get(st, 0) + 1
                if 400 <= st < 500:
                    client_errors.append((kind, st, doc))
                elif st >= 500:
                    ctype = hdrs.get("content-type", "")
                    if not (st == 503 and ctype.startswith("application/problem+json") and isinstance(doc, dict)
                            and doc.get("status") == 503 and "retry-after" in hdrs):
                        bad_5xx.append((kind, st, ctype, doc))
            # The store stays failing a while with no new traffic: the
            # queue's jobs keep failing and retrying (5 attempts take 15 s
            # of backoff), the outage a real one would be.
            time.sleep(hold)
        finally:
            if os.path.exists(arm):
                os.unlink(arm)
        try:
            self.assertIsNone(srv.proc.poll(), "the server died under store failures: " + srv.text()[-3000:])
            st, _, _ = srv.request("GET", "/liveness")
            self.assertEqual(st, 200)
            self.assertEqual(client_errors[:5], [], "%d valid requests answered 4xx under store failure "
                             "(the failure was the server's: 503)" % len(client_errors))
            self.assertEqual(bad_5xx[:5], [], "%d 5xx answers that are not a 503 problem+json with Retry-After"
                             % len(bad_5xx))
            self.assertEqual(chat_bad[:5], [], "chat blamed the client for a store failure")
            # Nothing acknowledged was lost, and every analysis completes
            # once the store is back (the queue retries what failed).
            stored = samples_by_upload(c)
            for what, uid, n in acked:
                if what == "json":
                    st, _, doc = c.call("GET", "/api/v1/health-data/processing/" + uid)
                    self.assertEqual(st, 200, (uid, doc))
                    self.assertEqual(doc.get("total_metrics"), n, doc)
                else:
                    # The samples are there, and the analysis completes.
                    self.assertEqual(stored[uid], n, (what, uid))
                    analysed.append(uid)
            statuses = wait_done(c, analysed, 180)
            unfinished = [d for d in statuses.values() if d.get("status") != "completed"]
            self.assertEqual(unfinished[:3], [], "%d of %d acknowledged uploads not analysed"
                             % (len(unfinished), len(analysed)))
            # Normal service, chat included.
            st, _, doc = c.call("POST", "/api/v1/health-data/upload", upload_body(c.user_id, 999999))
            self.assertLess(st, 300, doc)
            ws.send_json({"type": "message", "content": "How did I sleep?"})
            self.assertEqual(ws.recv(skip=("typing", "insight"))["type"], "message")
            ws.close()
        finally:
            srv.stop()  # fails on any sanitizer or leak report
        with open(count) as f:
            calls, failed = (int(x) for x in f.read().split())
        self.assertGreater(failed, 0, "no store call was failed")
        print("store faults, every %d calls: %d of %d store calls failed; answers %s; chat %s; "
              "%d acknowledged uploads checked, %d analyses completed"
              % (every, failed, calls, dict(sorted(answers.items())), chat_answers, len(acked), len(analysed)),
              file=sys.stderr)

    def test_store_failures(self):
        self.assertTrue(LIB and os.path.exists(LIB), "CLARITY_STORE_FAULT_LIB not built")
        for every, hold in ((97, 0), (13, 20), (5, 0)):
            with self.subTest(every=every):
                self.run_window(every, hold=hold)


@unittest.skipUnless(os.path.exists(PG_INITDB), "PostgreSQL 15 is not installed")
class StoreFaultsPostgres(StoreFaults):
    """The same windows on PostgreSQL (a throwaway server, scripts/pg-test-server)."""

    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer()
        # One database for every window: one key ring for its servers.
        cls.extra_env = dict(DATABASE_URL=cls.pg.url, **production_keys())

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()


if __name__ == "__main__":
    unittest.main()
