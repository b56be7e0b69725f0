"""Zero-downtime restart of one `clarity serve` (SIGUSR2: socket hand-over),
and start-up on a socket inherited under systemd's socket-activation
protocol.

The real binary serves from a copy in a temporary directory (so that a test
can replace it, as a deploy does). This test process makes itself a child
subreaper, so that each new generation — started by the previous one, which
then exits — is reparented to it and its exit status can be collected."""
import ctypes
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import unittest

import harness
import loadgen
from harness import Server

PR_SET_CHILD_SUBREAPER = 36
RESTARTS = 5
ENV = {"RATE_LIMITS": "auth=100000/60,upload=100000/60,api=100000/60,insights=100000/60",
       "SHUTDOWN_GRACE_SECONDS": "60", "WORKER_THREADS": "1"}


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def wait_pid(pid, timeout=120):
    """Exit status of a (reparented) child, as os.waitstatus_to_exitcode."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise AssertionError("process %d did not exit" % pid)


class Restartable(Server):
    """A Server run from its own copy of the binary."""

    def __init__(self, env):
        self.workdir_bin = None
        super().__init__(env=env, start=False)
        self.bin = os.path.join(self.dir, "clarity-bin")
        shutil.copy2(harness.BIN, self.bin)
        saved = harness.BIN
        harness.BIN = self.bin
        try:
            self.start()
        finally:
            harness.BIN = saved
        self.pid = self.proc.pid

    def records(self, message):
        return [r for r in self.logs() if r.get("message") == message]

    def wait_log(self, message, pred=lambda r: True, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for r in self.records(message):
                if pred(r):
                    return r
            time.sleep(0.05)
        raise AssertionError("no %r log line:\n%s" % (message, self.text()[-4000:]))

    def restart(self):
        """SIGUSR2 to the serving process; returns the new one's pid after
        the old one exited (its exit status must be 0)."""
        old = self.pid
        os.kill(old, signal.SIGUSR2)
        rec = self.wait_log("restart: the new process serves; draining this one",
                            lambda r: r.get("new_pid") not in self.seen_pids())
        new = rec["new_pid"]
        self.wait_log("listening", lambda r: r.get("pid") == new)
        status = self.proc.wait(120) if old == self.proc.pid else wait_pid(old)
        if status != 0:
            raise AssertionError("old process %d exited %s:\n%s" % (old, status, self.text()[-4000:]))
        self.pid = new
        self._seen.add(new)
        return new

    def seen_pids(self):
        if not hasattr(self, "_seen"):
            self._seen = {self.proc.pid}
        return self._seen

    def shutdown(self):
        """SIGTERM the serving generation, collect its status, then let the
        harness check the whole log (all generations) for sanitizer reports."""
        status = 0
        if self.pid != self.proc.pid:
            os.kill(self.pid, signal.SIGTERM)
            status = wait_pid(self.pid)
        self.stop()
        return status


class RestartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        become_subreaper()

    def test_restarts_under_load_lose_nothing(self):
        srv = Restartable(ENV)
        load = None
        try:
            srv.seen_pids()
            user_id, token = loadgen.register("127.0.0.1", srv.port)
            load = loadgen.Load("127.0.0.1", srv.port, user_id, token).start()
            load.phase = "before"
            load.wait_for(60)
            pids = [srv.pid]
            for i in range(RESTARTS):
                load.phase = "restart %d" % (i + 1)
                pids.append(srv.restart())
                # The old process is gone: whatever answers now is the new one.
                self.assertFalse(os.path.exists("/proc/%d" % pids[-2]) and
                                 open("/proc/%d/stat" % pids[-2]).read().split()[2] != "Z")
                load.wait_for(100)
            load.stop()
            print("restart load:", load.count(), "requests,", len(load.acknowledged), "uploads acknowledged,",
                  len(load.failures), "failed", load.failures[:5])
            for row in load.report():
                print("  %(phase)-10s %(requests)5d requests, %(failures)d failed, p50 %(p50_ms)s ms, "
                      "p99 %(p99_ms)s ms, max %(max_ms)s ms" % row)
            self.assertEqual(len(set(pids)), RESTARTS + 1, pids)
            self.assertEqual(load.failures, [], "failed requests during restarts")
            self.assertGreater(len(load.acknowledged), 0)
            self.assertEqual(load.verify_uploads(), [], "acknowledged uploads missing")
            # Every generation logged its own "listening" on the same port.
            listening = srv.records("listening")
            self.assertEqual([r["pid"] for r in listening], pids)
            self.assertEqual({r["port"] for r in listening}, {srv.port})
            self.assertEqual(len(srv.records("serving on an inherited socket (LISTEN_FDS)")), RESTARTS)
            self.assertEqual(srv.shutdown(), 0)
        finally:
            if load is not None:
                load.stop()
            if srv.pid != srv.proc.pid and os.path.exists("/proc/%d" % srv.pid):
                os.kill(srv.pid, signal.SIGKILL)
                wait_pid(srv.pid)
            srv.stop()

    def test_failed_restart_keeps_the_old_process_serving(self):
        srv = Restartable(ENV)
        try:
            srv.seen_pids()
            real = srv.bin + ".real"
            os.rename(srv.bin, real)
            with open(srv.bin, "w") as f:
                f.write("#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
            os.chmod(srv.bin, stat.S_IRWXU)
            os.kill(srv.pid, signal.SIGUSR2)
            rec = srv.wait_log("restart failed: the new process stopped before it was ready; still serving")
            self.assertEqual(rec["status"], "exited with status 3")
            self.assertIsNone(srv.proc.poll())
            status, _, _ = srv.request("GET", "/readiness")
            self.assertEqual(status, 200)
            # The fixed binary is picked up by the next attempt.
            os.replace(real, srv.bin)
            new = srv.restart()
            self.assertNotEqual(new, srv.proc.pid)
            status, _, _ = srv.request("GET", "/readiness")
            self.assertEqual(status, 200)
            self.assertEqual(srv.shutdown(), 0)
        finally:
            if srv.pid != srv.proc.pid and os.path.exists("/proc/%d" % srv.pid):
                os.kill(srv.pid, signal.SIGKILL)
                wait_pid(srv.pid)
            srv.stop()


class HungRestartTest(unittest.TestCase):
    """A new process that never becomes ready (the binary is replaced by one
    that only sleeps, holding the inherited socket)."""

    @classmethod
    def setUpClass(cls):
        become_subreaper()

    def hang(self, srv):
        real = srv.bin + ".real"
        os.rename(srv.bin, real)
        with open(srv.bin, "w") as f:
            f.write("#!/bin/sh\nexec sleep 600\n")
        os.chmod(srv.bin, stat.S_IRWXU)

    def test_not_ready_in_time_is_stopped_and_the_old_keeps_serving(self):
        srv = Restartable(dict(ENV, RESTART_TIMEOUT_SECONDS="1"))
        try:
            self.hang(srv)
            os.kill(srv.pid, signal.SIGUSR2)
            rec = srv.wait_log("restart failed; still serving")
            self.assertEqual(rec["reason"], "not ready within RESTART_TIMEOUT_SECONDS")
            # The sleeping child was killed and reaped by the old process.
            self.assertFalse(os.path.exists("/proc/%d" % rec["pid"]))
            self.assertIsNone(srv.proc.poll())
            self.assertEqual(srv.request("GET", "/readiness")[0], 200)
            self.assertEqual(srv.shutdown(), 0)
            self.assertEqual(srv.proc.returncode, 0)
        finally:
            srv.stop()

    def test_sigterm_while_the_new_process_starts(self):
        srv = Restartable(ENV)
        try:
            self.hang(srv)
            os.kill(srv.pid, signal.SIGUSR2)
            srv.wait_log("restarting: starting a new process on the listening socket")
            os.kill(srv.pid, signal.SIGTERM)
            self.assertEqual(srv.proc.wait(120), 0)
            rec = srv.wait_log("restart abandoned: stop signal while the new process started")
            self.assertEqual(rec["signal"], signal.SIGTERM)
            self.assertEqual(srv.records("draining")[-1]["handed_over"], 0)
        finally:
            srv.stop()


class SocketActivationTest(unittest.TestCase):
    """systemd-style start: the socket is bound by someone else and passed
    as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<the server's pid>."""

    def test_serves_on_an_inherited_socket(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)
        port = lsock.getsockname()[1]
        d = Server(env=ENV, start=False)
        env = dict(d.env, PORT="0")
        fd = lsock.fileno()
        # LISTEN_PID must be the server's own pid: the shell's `exec` keeps it.
        proc = subprocess.Popen(
            ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve', harness.BIN],
            cwd=d.dir, env=env, pass_fds=(3,), preexec_fn=lambda: os.dup2(fd, 3),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        lsock.close()
        try:
            status = None
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=10)
                    c.sendall(b"GET /readiness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    status, _, _ = harness.read_http_response(c)
                    c.close()
                    if status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            self.assertEqual(status, 200)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(60), 0)
            err = proc.stderr.read().decode()
            self.assertIn("serving on an inherited socket (LISTEN_FDS)", err)
            self.assertNotIn("AddressSanitizer", err)
            self.assertNotIn("runtime error:", err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
            shutil.rmtree(d.dir, ignore_errors=True)

    def test_listen_pid_of_another_process_is_ignored(self):
        # LISTEN_PID names someone else: the server binds HOST:PORT itself.
        srv = Server(env=dict(ENV, LISTEN_FDS="1", LISTEN_PID="1"))
        try:
            self.assertEqual(srv.request("GET", "/readiness")[0], 200)
            self.assertNotIn("inherited socket", srv.text())
        finally:
            srv.stop()

    def test_more_than_one_socket_is_refused(self):
        d = Server(env=ENV, start=False)
        try:
            p = subprocess.run(["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" serve', harness.BIN],
                               cwd=d.dir, env=d.env, capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertIn("LISTEN_FDS=2: clarity serve takes exactly one listening socket", p.stderr.decode())
        finally:
            shutil.rmtree(d.dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
