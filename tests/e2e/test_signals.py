"""A shutdown signal drains the server whichever thread the kernel gives it
to. `serve` blocks SIGTERM in every thread it starts and waits for it in the
main thread, but OpenBLAS starts its thread pool in the library's
constructor, before main, with nothing blocked: a process-directed SIGTERM
that arrived while the main thread was not in sigwait went to that thread
and killed the process by the default action, with no drain (seen as a
flaky e2e/test_restart under ASan). The test sends SIGTERM to such a
thread directly."""
import ctypes
import os
import re
import signal
import unittest

from harness import Server

SYS_TGKILL = 234  # x86_64


def sigblk(pid, tid):
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        return int(re.search(r"SigBlk:\s*([0-9a-f]+)", f.read()).group(1), 16)


class Signals(unittest.TestCase):
    def test_sigterm_to_a_library_thread_drains(self):
        srv = Server(env={"OPENBLAS_NUM_THREADS": "2", "WORKER_THREADS": "1"})
        pid = srv.proc.pid
        bit = 1 << (signal.SIGTERM - 1)
        others = [int(t) for t in os.listdir("/proc/%d/task" % pid)
                  if int(t) != pid and not sigblk(pid, int(t)) & bit]
        self.assertTrue(others, "expected a thread made before main (the OpenBLAS pool) with SIGTERM open")
        libc = ctypes.CDLL(None, use_errno=True)
        self.assertEqual(libc.syscall(SYS_TGKILL, pid, others[0], signal.SIGTERM), 0)
        self.assertEqual(srv.proc.wait(30), 0)  # drained, not killed (-15)
        srv.stop()
        self.assertIn('"draining"', srv.text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
